"""DFERCLIP network, optimiser and CLIP factory (dfer-clip.md "Model", "What trains")."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from dferbench.models import clip as clip_mod
from dferbench.models.clip import build_clip_from_config, clip_input_size, create_clip, register_model_configs
from dferbench_plugins.dferclip.network import DFERCLIP, build_optimizer
from dferbench.models.temporal import TemporalMean, TemporalTransformerCls

TEXTS = [
    "a smiling mouth, raised cheeks, wrinkled eyes, and arched eyebrows.",
    "tears, a downward turned mouth, drooping upper eyelids, and a wrinkled forehead.",
    "furrowed eyebrows, narrow eyes, tightened lips, and flared nostrils.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return create_clip("dferbench-test-tiny", None)[1]


@pytest.fixture()
def tiny(tokenizer):
    """A fresh tiny CLIP per test (DFERCLIP changes requires_grad flags); one shared tokenizer."""
    torch.manual_seed(0)
    return build_clip_from_config(open_clip.get_model_config("dferbench-test-tiny")), tokenizer


# --- the CLIP factory ------------------------------------------------------------------


def test_tiny_configs_registered_and_idempotent():
    register_model_configs()  # the plugin-registered dferbench-tiny
    for name in ("dferbench-test-tiny", "dferbench-tiny"):
        assert name in open_clip.list_models()
    n_paths = len(open_clip.factory._MODEL_CONFIG_PATHS)
    assert register_model_configs() == []
    assert len(open_clip.factory._MODEL_CONFIG_PATHS) == n_paths
    cfg = open_clip.get_model_config("dferbench-tiny")
    assert cfg["quick_gelu"] is True and cfg["embed_dim"] == 128
    assert cfg["vision_cfg"] == {"image_size": 64, "layers": 4, "width": 128, "patch_size": 16, "head_width": 32}
    assert cfg["text_cfg"] == {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2}
    with open(clip_mod.CONFIG_DIR / "dferbench-test-tiny.json") as f:
        assert json.load(f) == open_clip.get_model_config("dferbench-test-tiny")


def test_create_clip_tiny():
    clip, tok = create_clip("dferbench-test-tiny", None)
    assert isinstance(clip, open_clip.CLIP) and not clip.training
    assert clip_input_size(clip) == 32 and clip_input_size(clip.visual) == 32
    assert next(clip.parameters()).dtype == torch.float32
    assert isinstance(clip.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert clip.visual.transformer.resblocks[0].attn.num_heads == 2  # head_width 32
    ids = tok(["happiness."])
    assert ids.shape == (1, 77) and ids[0, 0].item() == 49406 and 49407 in ids[0].tolist()
    big, _ = create_clip("dferbench-tiny", None)
    assert clip_input_size(big) == 64 and big.visual.output_dim == 128


def test_create_clip_pretrained_errors(tmp_path):
    missing = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(FileNotFoundError, match="weights.pt"):
        create_clip("dferbench-test-tiny", str(missing))
    with pytest.raises(FileNotFoundError, match="openai"):  # lists the tags it knows
        create_clip("ViT-B-32-quickgelu", "opneai")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        create_clip("no-such-model", None)
    with pytest.raises(ValueError, match="did you mean ViT-B-32-quickgelu"):
        create_clip("ViT-B-32-quickgelo", None)


def test_create_clip_from_local_file(tmp_path, tiny):
    clip, _ = tiny
    path = tmp_path / "tiny.pt"
    torch.save(clip.state_dict(), path)
    again, _ = create_clip("dferbench-test-tiny", path)
    for (k, a), (_, b) in zip(clip.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


# --- the network -----------------------------------------------------------------------


def test_submodules_and_shapes(tiny):
    clip, tok = tiny
    model = DFERCLIP(clip, TEXTS, tokenizer=tok)
    assert [n for n, _ in model.named_children()] == ["prompt_learner", "text_encoder", "image_encoder", "temporal_net"]
    assert model.image_encoder is clip.visual
    assert isinstance(model.temporal_net, TemporalTransformerCls)
    assert model.prompt_learner.ctx.shape == (3, 8, 32)  # class-specific, 8 contexts
    assert model.prompt_learner.class_token_position == "end"
    assert model.temperature == 0.01
    assert not any(k.startswith("clip_model_") or "logit_scale" in k for k in model.state_dict())
    video = torch.rand(2, 16, 3, 32, 32)
    assert model(video).shape == (2, 3)
    assert model(video[:, :8]).shape == (2, 3)
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        model(video[0])


def test_default_tokenizer_matches_open_clip(tiny):
    clip, tok = tiny
    a = DFERCLIP(clip, TEXTS, tokenizer=tok)
    b = DFERCLIP(clip, TEXTS)
    assert torch.equal(a.prompt_learner.tokenized_prompts, b.prompt_learner.tokenized_prompts)


def test_logits_are_cosine_over_temperature(tiny):
    clip, tok = tiny
    model = DFERCLIP(clip, TEXTS, tokenizer=tok).eval()
    video = torch.rand(2, 16, 3, 32, 32)
    with torch.no_grad():
        logits = model(video)
        frames = clip.encode_image(video.reshape(32, 3, 32, 32)).reshape(2, 16, -1)
        v = model.temporal_net(frames)
        t = model.text_encoder(model.prompt_learner(), model.prompt_learner.tokenized_prompts)
        cosine = torch.nn.functional.cosine_similarity(v[:, None], t[None], dim=-1)  # [B, C]
    torch.testing.assert_close(logits, 100 * cosine, rtol=1e-5, atol=1e-4)
    assert logits.abs().max() <= 100 + 1e-3
    # CLIP's own logit scale plays no part.
    with torch.no_grad():
        clip.logit_scale.fill_(0.0)
        assert torch.equal(model(video), logits)


def test_what_trains(tiny):
    clip, tok = tiny
    model = DFERCLIP(clip, TEXTS, tokenizer=tok)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable == (
        {f"image_encoder.{n}" for n, _ in clip.visual.named_parameters()}
        | {f"temporal_net.{n}" for n, _ in model.temporal_net.named_parameters()}
        | {"prompt_learner.ctx"}
    )
    assert {"temporal_net.cls_token", "temporal_net.pos_embedding"} <= trainable
    assert frozen == {f"text_encoder.{n}" for n, _ in model.text_encoder.named_parameters()}
    assert "text_encoder.token_embedding.weight" in frozen
    assert "text_encoder.positional_embedding" in frozen
    # One SGD step moves exactly the trainable tensors.
    optimizer, _ = build_optimizer(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = torch.nn.functional.cross_entropy(model(torch.rand(2, 4, 3, 32, 32)), torch.tensor([0, 2]))
    loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert "prompt_learner.ctx" in changed and "temporal_net.cls_token" in changed
    assert changed <= trainable and any(n.startswith("image_encoder.") for n in changed)


def test_param_groups_and_schedule(tiny):
    clip, tok = tiny
    model = DFERCLIP(clip, TEXTS, tokenizer=tok)
    optimizer, scheduler = build_optimizer(model)
    assert isinstance(optimizer, torch.optim.SGD)
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR)
    groups = optimizer.param_groups
    assert [g["name"] for g in groups] == ["temporal_net", "image_encoder", "prompt_learner"]
    assert [g["lr"] for g in groups] == [1e-2, 1e-5, 1e-3]
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 1e-4 for g in groups)
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[0] == {id(p) for p in model.temporal_net.parameters()}
    assert ids[1] == {id(p) for p in clip.visual.parameters()}
    assert ids[2] == {id(model.prompt_learner.ctx)}
    assert dict(scheduler.milestones) == {30: 1, 40: 1} and scheduler.gamma == 0.1
    lrs = []
    for _ in range(50):  # stepped once per epoch
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    for epoch, factor in ((0, 1.0), (29, 1.0), (30, 0.1), (39, 0.1), (40, 0.01), (49, 0.01)):
        for got, base in zip(lrs[epoch], (1e-2, 1e-5, 1e-3)):
            assert got == pytest.approx(base * factor, rel=1e-9), (epoch, got)
    custom, _ = build_optimizer(model, lr_temporal=0.5, lr_image=0.25, lr_prompt=0.125, momentum=0.5)
    assert [g["lr"] for g in custom.param_groups] == [0.5, 0.25, 0.125]
    build_optimizer(model, epochs=20)  # milestones past the end simply never fire
    with pytest.raises(ValueError, match="milestones"):
        build_optimizer(model, milestones=(0, 40))


def test_temporal_depth0_is_mean_and_has_no_group(tiny):
    clip, tok = tiny
    model = DFERCLIP(clip, TEXTS, tokenizer=tok, temporal_depth=0).eval()
    assert isinstance(model.temporal_net, TemporalMean)
    assert [g["name"] for g in model.param_groups()] == ["image_encoder", "prompt_learner"]
    video = torch.rand(1, 6, 3, 32, 32)
    with torch.no_grad():
        frames = clip.encode_image(video[0])  # [T, E]
        v = frames.mean(0, keepdim=True)
        v = v / v.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(model.encode_video(video), v, rtol=1e-6, atol=1e-6)


def test_generic_context_and_positions(tiny):
    clip, tok = tiny
    for position in ("end", "middle", "front"):
        model = DFERCLIP(clip, TEXTS, tokenizer=tok, class_specific=False, n_ctx=4, class_token_position=position)
        assert model.prompt_learner.ctx.shape == (4, 32)
        assert model(torch.rand(1, 2, 3, 32, 32)).shape == (1, 3)
    assert model.options()["class_token_position"] == "front"
