"""`dferbench evaluate` on a checkpoint in the DFER-CLIP authors' format, and the api helpers."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dferbench import api
from dferbench.plugin import manager as plugins
from dferbench.run import runner
from dferbench.run.config import option_defaults
from dferbench.cli import cli
from dferbench.data.loader import ClipSet
from dferbench.run.engine import predict_module
from dferbench.models.clip import create_clip
from dferbench_plugins.dferclip.network import DFERCLIP
from dferbench_plugins.textsets import descriptor_texts

from test_models_checkpoints import _save_authors_checkpoint

SETTINGS = ["data.image_size=32", "data.num_clips=120", "train.eval_batch_size=16",
            "model.clip_model=dferbench-test-tiny"]


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(3)
    clip, tok = create_clip("dferbench-test-tiny", None)
    classes = plugins.get("dataset", "synthetic").target(option_defaults(plugins.datasets()["synthetic"].options)).classes
    texts = [t[0] for t in descriptor_texts(classes)]
    model = DFERCLIP(clip, texts, tokenizer=tok)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_authors_checkpoint_evaluates_through_the_cli(trained, tmp_path):
    ckpt = tmp_path / "DFEW_set_1_model_best.pth"
    _save_authors_checkpoint(trained, ckpt)
    args = ["evaluate", "-c", str(ckpt), "-d", "synthetic", "--fold", "2", "-o", str(tmp_path / "res")]
    for s in SETTINGS:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "epoch 17" in res.output and "duplicated clip_model_ keys dropped" in res.output
    assert "pickled objects not loaded" in res.output and "RecorderMeter" in res.output
    assert "architecture dferbench-test-tiny" in res.output
    path = tmp_path / "res/synthetic/dferclip-checkpoint-DFEW_set_1_model_best.pth@checkpoint/fold2-seed1.json"
    result = json.loads(path.read_text())
    assert result["selection"] == "checkpoint" and result["fold"] == 2
    # the same numbers as the original network on the same test clips
    plan = runner.plan("dferclip", "synthetic", overrides=SETTINGS, weights=False)  # data settings only
    data = plugins.get("dataset", "synthetic").target(plan.config["data"])
    clips = ClipSet("synthetic", data.split(2, "test"), data.reader, 16, 32, "clip")
    logits = predict_module(trained, clips, batch_size=16, device="cpu")
    assert result["war"] == pytest.approx(100 * np.mean(logits.argmax(1) == clips.labels), abs=1e-3)


def test_evaluate_refuses_a_class_count_mismatch(trained, tmp_path):
    ckpt = tmp_path / "m.pth"
    _save_authors_checkpoint(trained, ckpt)
    res = CliRunner().invoke(cli, ["evaluate", "-c", str(ckpt), "-d", "synthetic-11", "-o", str(tmp_path)]
                             + [a for s in SETTINGS for a in ("--set", s)])
    assert res.exit_code == 2
    assert "m.pth scores 7 classes but dataset 'synthetic-11' has 11" in res.output


def test_api_build_model_optimizer_and_checkpoint_round_trip(trained, tmp_path):
    model = api.build_model("dferclip", class_texts=trained.class_texts, clip_model="dferbench-test-tiny",
                            pretrained=None, n_ctx=8, temporal_depth=1)
    video = torch.rand(2, 16, 3, 32, 32)
    assert model(video).shape == (2, 7)
    optimizer, scheduler = api.build_optimizer(model)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 1e-5, 1e-3]
    ckpt = tmp_path / "authors.pth"
    _save_authors_checkpoint(trained, ckpt)
    report = api.load_checkpoint(model, ckpt)
    assert report["format"] == "dfer-clip authors" and report["epoch"] == 17
    with torch.no_grad():
        assert torch.allclose(model.eval()(video), trained(video), atol=1e-5)
    with pytest.raises(Exception, match="unknown key model.n_ctxx"):
        api.build_model("dferclip", class_texts=["a."], clip_model="dferbench-test-tiny", n_ctxx=3)
