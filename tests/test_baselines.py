"""The paper's classifier-based baselines on the synthetic set: linear probe, fine-tuning."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from dferbench import api
from dferbench.plugin import manager as plugins
from dferbench.run import runner
from dferbench.data.loader import ClipSet
from dferbench.data.records import ClipRecord
from dferbench.run.engine import seed_everything
from dferbench.plugin.method import ModelContext, Monitor
from dferbench_plugins.baselines.linear_probe import COARSE_C, search_c, validation_split

# The smallest synthetic benchmark the 5 folds allow, 32 px, 4 frames, the 32 px test CLIP.
TINY = ["data.num_clips=35", "data.render_size=32", "data.image_size=32", "data.num_frames=4",
        "model.clip_model=dferbench-test-tiny", "model.pretrained=", "train.eval_batch_size=16"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two shared CPU cores: more intra-op threads only contend (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def unit(model: str, workdir, overrides=(), fold: int = 1, seed: int = 1):
    """What the runner hands a method for one unit: its context and the fold's clip sets."""
    plan = runner.plan(model, "synthetic", overrides=TINY + list(overrides))
    data = plan.config["data"]
    ds = plugins.get("dataset", "synthetic").build(dict(data))

    def clipset(split):
        return ClipSet("synthetic", ds.split(fold, split), ds.reader, num_frames=data["num_frames"],
                       image_size=data["image_size"], normalize=data["normalize"], workers=0)

    seed_everything(seed)
    ctx = ModelContext(model=model, dataset="synthetic", fold=fold, classes=list(ds.classes), config=plan.config,
                       device="cpu", seed=seed, workdir=workdir, texts=runner.class_texts)
    return ctx, clipset("train"), clipset("test")


def run(model, tmp_path, *overrides, **kw):
    return api.run(model, "synthetic", folds=[1], output=tmp_path, overrides=TINY + list(overrides),
                   echo=kw.pop("echo", lambda m: None), **kw)


def test_linear_probe_records_the_chosen_c(tmp_path):
    result = run("linear-probe", tmp_path)[0]
    fit = result["fit"]
    assert fit["C"] in [t["C"] for t in fit["c_search"]]
    assert len(fit["c_search"]) == len(COARSE_C) + 2 * 8  # coarse sweep, then 8 two-sided steps
    assert fit["val_split"] == "subject" and fit["n_fit"] + fit["n_val"] == result["n_train"]
    assert result["family"] == "classifier-based" and result["temporal"] is False
    assert len(result["confusion"]) == 7


def test_linear_probe_c_search_never_sees_the_test_fold(tmp_path):
    from dferbench_plugins.baselines.linear_probe import LinearProbe

    ctx, train, test = unit("linear-probe", tmp_path)
    clean = LinearProbe(ctx).fit(train, Monitor("last_epoch"))
    # Even when the harness hands over test clips (best_on_test), with every label wrong.
    poisoned = test.subset(range(len(test)))
    poisoned.records = [replace(r, label=(r.label + 1) % 7) for r in test.records]
    seed_everything(ctx.seed)  # the same random CLIP again
    probe = LinearProbe(ctx)
    fit = probe.fit(train, Monitor("best_on_test", test_clips=poisoned))
    assert fit["C"] == clean["C"] and fit["c_search"] == clean["c_search"]
    # By construction: the validation clips are training clips, subject-disjoint from the rest.
    fit_idx, val_idx, how = validation_split(train.records, 0.2, ctx.seed)
    val_ids = {train.records[i].clip_id for i in val_idx}
    assert how == "subject" and not val_ids & {r.clip_id for r in test.records}
    assert not {train.records[i].subject for i in val_idx} & {train.records[i].subject for i in fit_idx}
    assert probe.predict(test).shape == (len(test), 7)


def test_validation_split_is_stratified_without_subjects():
    records = [ClipRecord(f"c{i}", "x", 8, i % 3) for i in range(60)]
    fit, val, how = validation_split(records, 0.2, seed=0)
    assert how == "stratified" and len(val) == 12 and sorted(np.r_[fit, val]) == list(range(60))
    assert np.bincount([records[i].label for i in val]).tolist() == [4, 4, 4]


def test_c_search_follows_lpclip():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = rng.normal(size=(120, 8)) + 0.6 * np.eye(3, 8)[y]
    c, trace = search_c(x[:90], y[:90], x[90:], y[90:], steps=3)
    assert [t["C"] for t in trace[:7]] == list(COARSE_C)
    peak = COARSE_C[int(np.argmax([t["val_acc"] for t in trace[:7]]))]
    first = trace[7:9]  # the first step scores peak/10 and peak*10
    assert first[0]["C"] == pytest.approx(peak / 10) and first[1]["C"] == pytest.approx(peak * 10)
    assert peak / 10 <= c * (1 + 1e-9) and c <= peak * 10 * (1 + 1e-9)
    assert search_c(x[:90], y[:90], x[90:], y[90:], steps=3) == (c, trace)  # deterministic


@pytest.mark.parametrize("model, depth", [("finetune", 0), ("finetune-tm", 1)])
def test_finetune_trains_the_image_encoder_and_head(model, depth, tmp_path):
    from dferbench_plugins.baselines.finetune import FineTune

    ctx, train, test = unit(model, tmp_path, ["train.epochs=1", "train.batch_size=8"])
    method = FineTune(ctx)
    before = {k: v.clone() for k, v in method.module.state_dict().items()}
    fit = method.fit(train, Monitor("last_epoch"))
    after = method.module.state_dict()
    assert fit["epochs"] == 1
    assert not torch.equal(before["image_encoder.conv1.weight"], after["image_encoder.conv1.weight"])
    assert not torch.equal(before["head.weight"], after["head.weight"])
    has_temporal = any(k.startswith("temporal_net.") for k in after)
    assert has_temporal == bool(depth)
    groups = {g["name"]: g["lr"] for g in method.module.param_groups(1e-5, 1e-2, 1e-2)}
    assert groups["image_encoder"] == 1e-5 and groups["head"] == 1e-2 and ("temporal_net" in groups) == bool(depth)
    assert method.predict(test).shape == (len(test), 7)


def test_finetune_tm_runs_end_to_end_and_resumes(tmp_path):
    first = run("finetune-tm", tmp_path, "train.epochs=1", "train.batch_size=8")[0]
    assert first["temporal"] is True and first["family"] == "classifier-based"
    assert len(first["history"]) == 1
    messages = []
    again = run("finetune-tm", tmp_path, "train.epochs=1", "train.batch_size=8", echo=messages.append)[0]
    assert any(m.startswith("skip") for m in messages) and again["war"] == first["war"]


def test_presets_cover_the_paper_datasets_and_synthetic():
    models = plugins.models()
    for name in ("linear-probe", "finetune", "finetune-tm", "coop", "cocoop"):
        presets = models[name].presets
        assert {"default", "dfew", "ferv39k", "mafw", "synthetic", "synthetic-11"} <= set(presets), name
        for dataset in ("dfew", "ferv39k", "mafw"):
            real = runner.plan(name, dataset, weights=False).config  # the presets, not the weights
            assert real["data"]["num_frames"] == 16 and real["data"]["image_size"] == 224
            assert real["model"]["clip_model"] == "ViT-B-32-quickgelu" and real["model"]["pretrained"] == "openai"
            assert real["model"].get("train_on_cached_features", False) is False  # CoOp's augmented recipe
        small = runner.plan(name, "synthetic").config
        assert small["data"]["num_frames"] == 8 and small["model"]["clip_model"] == "dferbench-tiny"
        assert small["data"]["image_size"] == 64  # the tiny CLIP's input, from the synthetic profile
    assert runner.plan("coop", "synthetic").config["model"]["train_on_cached_features"] is True
    for name in ("linear-probe", "finetune", "finetune-tm", "coop", "cocoop"):
        assert name in api.models_for("synthetic") and name in api.models_for("mafw")


def test_manual_prompt_variants_get_their_own_rows():
    for text in ("photo-of", "expression-of", "class-names"):
        plan = runner.plan("dferclip", "synthetic", overrides=[f"model.text={text}"])
        assert plan.run_name == f"dferclip[text={text}]"
    assert runner.plan("coop", "synthetic", overrides=["model.class_specific=true"]).run_name == \
        "coop[class_specific=True]"


@pytest.mark.slow
def test_all_models_run_on_synthetic(tmp_path):
    names = api.models_for("synthetic")
    assert {"zeroshot-clip", "linear-probe", "finetune", "finetune-tm", "coop", "cocoop", "dferclip"} <= set(names)
    assert "zeroshot-farl" not in names  # needs a FaRL weights file
    results = api.run("all", "synthetic", folds=[1], output=tmp_path, echo=lambda m: None,
                      overrides=TINY + ["train.epochs=1", "train.batch_size=8"])
    assert sorted(r["model"] for r in results) == sorted(names)
    assert all(0 <= r["war"] <= 100 for r in results)
