"""CoOp-style prompt learner and text encoder (dfer-clip.md "Text path", baselines.md "CoOp")."""

from __future__ import annotations

import open_clip
import pytest
import torch

from dferbench.models.clip import build_clip_from_config, create_clip
from dferbench.models.prompt_learner import PromptLearner, TextEncoder

TEXTS = [
    "a smiling mouth, raised cheeks, wrinkled eyes, and arched eyebrows.",
    "tears, a downward turned mouth, drooping upper eyelids, and a wrinkled forehead.",
    "happiness.",
]
SOT, EOT = 49406, 49407


@pytest.fixture(scope="module")
def tokenizer():
    return create_clip("dferbench-test-tiny", None)[1]


@pytest.fixture()
def clip_and_tok(tokenizer):
    """A fresh tiny CLIP per test (tests freeze and swap its parts); one shared tokenizer."""
    torch.manual_seed(0)
    return build_clip_from_config(open_clip.get_model_config("dferbench-test-tiny")), tokenizer


def _set_ctx_to_x(learner: PromptLearner, clip, tok) -> None:
    """Context vectors := token embeddings of "X X ... X" (what the buffers were cut from)."""
    n = learner.n_ctx
    x_ids = tok([" ".join(["X"] * n)])[0, 1 : 1 + n]
    x_emb = clip.token_embedding(x_ids).detach()  # [M, W]
    with torch.no_grad():
        if learner.ctx.dim() == 3:
            learner.ctx.copy_(x_emb.expand(learner.n_cls, -1, -1))
        else:
            learner.ctx.copy_(x_emb)


def test_names_shapes_and_buffers(clip_and_tok):
    clip, tok = clip_and_tok
    learner = PromptLearner(clip, tok, TEXTS, n_ctx=8, class_specific=True)
    sd = learner.state_dict()
    assert set(sd) == {"ctx", "token_prefix", "token_suffix"}  # the authors' checkpoint names
    assert learner.ctx.shape == (3, 8, 32)
    assert learner.token_prefix.shape == (3, 1, 32)
    assert learner.token_suffix.shape == (3, 77 - 1 - 8, 32)
    assert not learner.token_prefix.requires_grad and not learner.token_suffix.requires_grad
    sot = clip.token_embedding.weight[SOT].detach()
    assert torch.equal(learner.token_prefix[:, 0], sot.expand(3, -1))
    # The suffix starts with the class text's tokens.
    text_ids = tok.encode(TEXTS[2])
    assert torch.equal(learner.token_suffix[2, : len(text_ids)], clip.token_embedding.weight[text_ids].detach())
    assert learner.name_lens == [len(tok.encode(t)) for t in TEXTS]
    assert learner().shape == (3, 77, 32)
    generic = PromptLearner(clip, tok, TEXTS, n_ctx=4, class_specific=False)
    assert generic.ctx.shape == (4, 32)
    assert generic().shape == (3, 77, 32)
    # The buffers own their storage (safetensors refuses shared tensors).
    assert learner.token_prefix.untyped_storage().data_ptr() != learner.token_suffix.untyped_storage().data_ptr()


def test_ctx_init_normal_std_002(clip_and_tok):
    clip, tok = clip_and_tok
    torch.manual_seed(3)
    learner = PromptLearner(clip, tok, TEXTS * 4, n_ctx=8, class_specific=True)  # 12 x 8 x 32 values
    ctx = learner.ctx.detach()
    assert abs(ctx.std().item() - 0.02) < 0.001
    assert abs(ctx.mean().item()) < 0.002
    assert learner.ctx.requires_grad


@pytest.mark.parametrize("class_specific", [True, False])
@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_reduces_to_plain_clip_text_encoding(clip_and_tok, class_specific, position):
    clip, tok = clip_and_tok
    n = 8
    learner = PromptLearner(clip, tok, TEXTS, n_ctx=n, class_specific=class_specific, class_token_position=position)
    _set_ctx_to_x(learner, clip, tok)
    encoder = TextEncoder(clip)
    ours = encoder(learner(), learner.tokenized_prompts)
    xs = lambda k: " ".join(["X"] * k)  # noqa: E731
    if position == "end":
        plain = [f"{xs(n)} {t}" for t in TEXTS]
    elif position == "middle":
        plain = [f"{xs(n // 2)} {t} {xs(n - n // 2)}" for t in TEXTS]
    else:
        plain = [f"{t} {xs(n)}" for t in TEXTS]
    with torch.no_grad():
        reference = clip.encode_text(tok(plain))
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_eot_pooling_position(clip_and_tok):
    clip, tok = clip_and_tok
    learner = PromptLearner(clip, tok, TEXTS, n_ctx=8)
    encoder = TextEncoder(clip)
    ids = learner.tokenized_prompts
    eot_pos = [1 + 8 + len(tok.encode(t)) for t in TEXTS]  # SOS + ctx + text
    assert ids.argmax(dim=-1).tolist() == eot_pos
    assert all(ids[i, p].item() == EOT for i, p in enumerate(eot_pos))
    prompts = learner()
    with torch.no_grad():
        x = prompts + clip.positional_embedding
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))  # [C, L, W]
        per_token = x @ clip.text_projection  # [C, L, E]
        feats = encoder(prompts, ids)
    for i, p in enumerate(eot_pos):
        torch.testing.assert_close(feats[i], per_token[i, p], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(feats[i], per_token[i, p - 1])


def test_ctx_init_phrase_coop(clip_and_tok):
    clip, tok = clip_and_tok
    learner = PromptLearner(clip, tok, ["happiness.", "anger."], ctx_init="a photo of a", class_specific=False)
    assert learner.n_ctx == 4 and learner.ctx.shape == (4, 32)
    phrase_ids = tok(["a photo of a"])[0, 1:5]
    assert torch.equal(learner.ctx.detach(), clip.token_embedding(phrase_ids).detach())
    with torch.no_grad():
        ours = TextEncoder(clip)(learner(), learner.tokenized_prompts)
        ref = clip.encode_text(tok(["a photo of a happiness.", "a photo of a anger."]))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="generic"):
        PromptLearner(clip, tok, ["happiness."], ctx_init="a photo of a", class_specific=True)
    with pytest.raises(ValueError, match="4 tokens"):
        PromptLearner(clip, tok, ["happiness."], ctx_init="a photo of a", n_ctx=3, class_specific=False)


def test_text_encoder_frozen_gradient_reaches_ctx_only(clip_and_tok):
    clip, tok = clip_and_tok
    learner = PromptLearner(clip, tok, TEXTS, n_ctx=8)
    encoder = TextEncoder(clip, freeze=True)
    assert all(not p.requires_grad for p in encoder.parameters())
    assert encoder.token_embedding is clip.token_embedding  # shared, not copied
    assert "attn_mask" not in encoder.state_dict()
    encoder(learner(), learner.tokenized_prompts).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_rejects_bad_options(clip_and_tok):
    clip, tok = clip_and_tok
    with pytest.raises(ValueError, match="class_token_position"):
        PromptLearner(clip, tok, TEXTS, class_token_position="left")
    with pytest.raises(ValueError, match="context length"):
        PromptLearner(clip, tok, [" ".join(["word"] * 70)], n_ctx=8)
    with pytest.raises(ValueError, match="empty"):
        PromptLearner(clip, tok, [], n_ctx=8)


def test_sequence_first_transformer_layout(clip_and_tok):
    """A text transformer with batch_first=False still takes [N, L, W] (open_clip's contract)."""
    clip, tok = clip_and_tok
    learner = PromptLearner(clip, tok, TEXTS, n_ctx=8)
    with torch.no_grad():
        expected = TextEncoder(clip)(learner(), learner.tokenized_prompts)
    seq_first = open_clip.transformer.Transformer(
        width=32, layers=2, heads=2, act_layer=open_clip.transformer.QuickGELU, batch_first=False
    )
    seq_first.load_state_dict(clip.transformer.state_dict())
    clip.transformer = seq_first
    encoder = TextEncoder(clip)
    assert encoder.transformer.batch_first is False
    with torch.no_grad():
        got = encoder(learner(), learner.tokenized_prompts)
        via_clip = clip.encode_text(learner.tokenized_prompts)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert via_clip.shape == got.shape

