"""CoOp and Co-CoOp: only the prompts train, the batched Co-CoOp forward is exact."""

import math

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from dferbench.errors import DferbenchError
from dferbench.plugin.method import Monitor
from dferbench.models.clip import create_clip
from dferbench_plugins.baselines.coop import CoCoOp, CoOp, saved_activation_bytes

from test_baselines import one_thread, run, unit  # noqa: F401  (one_thread: autouse fixture)

CLASSES = ["happiness.", "sadness.", "neutral.", "anger.", "surprise.", "disgust.", "fear."]


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_clip("dferbench-test-tiny", None)


def frozen_state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("model", ["coop", "cocoop"])
def test_only_the_prompts_train(model, tmp_path):
    from dferbench_plugins.baselines.prompting import CoCoOpMethod, CoOpMethod

    # On the clips (CoOp's recipe): every batch goes through the frozen image encoder.
    ctx, train, test = unit(model, tmp_path, ["train.epochs=2", "train.batch_size=8",
                                              "model.train_on_cached_features=false"])
    method = (CoOpMethod if model == "coop" else CoCoOpMethod)(ctx)
    net = method.module
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    expected = {"prompt_learner.ctx"}
    if model == "cocoop":
        expected |= {f"meta_net.linear{i}.{w}" for i in (1, 2) for w in ("weight", "bias")}
    assert trainable == expected
    image, text = frozen_state(net.image_encoder), frozen_state(net.text_encoder)
    ctx_before, scale = net.prompt_learner.ctx.detach().clone(), net.logit_scale.clone()
    fit = method.fit(train, Monitor("last_epoch"))
    assert fit["epochs"] == 2 and fit["trainable_parameters"] == sum(net.state_dict()[n].numel() for n in expected)
    for k, v in net.image_encoder.state_dict().items():
        assert torch.equal(v, image[k]), k
    for k, v in net.text_encoder.state_dict().items():
        assert torch.equal(v, text[k]), k
    assert torch.equal(net.logit_scale, scale)
    assert not torch.equal(net.prompt_learner.ctx, ctx_before)
    assert method.predict(test).shape == (len(test), 7)


def test_cocoop_batched_forward_equals_a_per_clip_loop(clip):
    model, tok = clip
    net = CoCoOp(model, CLASSES, tokenizer=tok)
    with torch.no_grad():
        net.meta_net.linear2.weight.normal_(0, 0.5)  # a visible shift per clip
    frames = torch.randn(5, 4, model.visual.output_dim)  # [B, T, E]
    batched = net(frames)
    video = F.normalize(frames.mean(1), dim=-1)
    pl = net.prompt_learner
    rows = []
    for v in video:  # Co-CoOp's reference loop, full 77-token prompts
        ctx = (pl.ctx + net.meta_net(v[None])).expand(len(CLASSES), -1, -1)
        text = net.text_encoder(torch.cat([pl.token_prefix, ctx, pl.token_suffix], 1), pl.tokenized_prompts)
        rows.append(net.logit_scale * F.normalize(text, dim=-1) @ v)
    assert net.n_tokens < 77
    torch.testing.assert_close(batched, torch.stack(rows), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("class_specific", [False, True])
def test_coop_prompt_truncation_is_exact(clip, position, class_specific):
    model, tok = clip
    net = CoOp(model, CLASSES, tokenizer=tok, n_ctx=4, class_specific=class_specific, class_token_position=position)
    full = CoOp(model, CLASSES, tokenizer=tok, n_ctx=4, class_specific=class_specific,
                class_token_position=position, truncate=False)
    full.load_state_dict(net.state_dict())
    features = torch.randn(3, model.visual.output_dim)
    assert net.n_tokens < full.n_tokens == 77
    torch.testing.assert_close(net(features), full(features), atol=1e-5, rtol=1e-5)
    assert net.logit_scale == pytest.approx(model.logit_scale.exp().item())


def test_phrase_initialised_context(clip, tmp_path):
    model, tok = clip
    net = CoOp(model, CLASSES, tokenizer=tok, ctx_init="a photo of a")
    ids = tok(["a photo of a"])[0, 1:5]
    assert net.prompt_learner.n_ctx == 4
    torch.testing.assert_close(net.prompt_learner.ctx, model.token_embedding(ids))
    from dferbench_plugins.baselines.prompting import CoOpMethod

    ctx = unit("coop", tmp_path, ["model.ctx_init=a photo of a", "model.class_specific=true"])[0]
    with pytest.raises(DferbenchError, match="class_specific=false"):
        CoOpMethod(ctx)


def test_warmup_then_cosine():
    from dferbench_plugins.baselines.prompting import warmup_cosine

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.002)
    sched = warmup_cosine(opt, epochs=10, warmup_epochs=1, warmup_lr=1e-5)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-5) and lrs[1] == pytest.approx(0.002)
    assert lrs[6] == pytest.approx(0.001 * (1 + math.cos(math.pi * 5 / 10)))


@pytest.mark.parametrize("model", ["coop", "cocoop"])
def test_runs_on_cached_features_and_records_it(model, tmp_path):
    from dferbench.models import features

    result = run(model, tmp_path, "train.epochs=2", "train.batch_size=8")[0]
    assert result["config"]["model"]["train_on_cached_features"] is True  # the synthetic preset
    assert result["fit"]["data_pipeline"] == "cached-features" and result["family"] == "text-based"
    calls = features.encoder_calls
    clips = run(model, tmp_path, "train.epochs=2", "train.batch_size=8", "model.train_on_cached_features=false")[0]
    assert features.encoder_calls == calls  # test features come from the cache
    assert "train_on_cached_features=False" in clips["run_name"]


def test_cocoop_memory_grows_with_the_batch_and_exceeds_coop(clip):
    model, tok = clip
    coop = CoOp(model, CLASSES, tokenizer=tok, n_ctx=4)
    cocoop = CoCoOp(model, CLASSES, tokenizer=tok)
    x, y = torch.randn(8, model.visual.output_dim), torch.arange(8) % 7
    a = saved_activation_bytes(coop, x, y)["saved_bytes"]
    b1 = saved_activation_bytes(cocoop, x[:1], y[:1])["saved_bytes"]
    b8 = saved_activation_bytes(cocoop, x, y)["saved_bytes"]
    assert b8 > 4 * b1 and b8 > 4 * a


@pytest.mark.parametrize("position", ["middle", "front"])
def test_coop_moves_the_class_name_and_leaves_the_period(clip, position):
    # CoOp's prompt is "<ctx> <name>." and its middle/front positions move <name> alone
    # (name_lens from the bare name): "X X happiness X X." / "happiness X X X X.".
    model, tok = clip
    coop = CoOp(model, CLASSES, tokenizer=tok, n_ctx=4, class_token_position=position)
    x_ids = tok(["X X X X"])[0, 1:5]
    with torch.no_grad():
        coop.prompt_learner.ctx.copy_(model.token_embedding(x_ids))
        texts = [f"X X {c[:-1]} X X." if position == "middle" else f"{c[:-1]} X X X X." for c in CLASSES]
        expected = model.token_embedding(tok(texts))
        torch.testing.assert_close(coop.prompt_learner(), expected)


@pytest.mark.parametrize("model", ["coop", "cocoop"])
def test_best_on_test_scores_epochs_on_the_features_the_result_is_scored_on(model, tmp_path, monkeypatch):
    # Trained on the clips, the result is scored on frozen fp32 features (predict). The
    # epochs must be scored on those too: on the clips, under bf16 on a GPU, the epoch would
    # be chosen on other numbers than the ones reported.
    import dferbench
    from dferbench import FeatureSet
    from dferbench_plugins.baselines.prompting import CoCoOpMethod, CoOpMethod

    seen = {}

    def train_module(module, optimizer, scheduler, train, monitor, **kw):
        seen.update(train=train, test=monitor.test_clips)
        return {}

    monkeypatch.setattr(dferbench, "train_module", train_module)  # what plugins import
    ctx, train, test = unit(model, tmp_path, ["model.train_on_cached_features=false"])
    method = (CoOpMethod if model == "coop" else CoCoOpMethod)(ctx)
    method.fit(train, Monitor("best_on_test", test_clips=test))
    assert seen["train"] is train  # trained on the clips, as asked
    assert isinstance(seen["test"], FeatureSet) and len(seen["test"]) == len(test)
    assert np.array_equal(seen["test"].labels, test.labels)
