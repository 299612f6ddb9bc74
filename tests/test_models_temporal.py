"""The DFER-CLIP temporal model against the facts (dfer-clip.md, "Temporal model")."""

from __future__ import annotations

import math

import pytest
import torch

from dferbench.models.temporal import (
    TemporalMean,
    TemporalTransformerCls,
    build_temporal_model,
    temporal_heads,
)


def test_head_rule_gives_8x64_at_512_and_inner_equals_width():
    assert temporal_heads(512) == (8, 64)
    assert temporal_heads(128) == (2, 64)
    assert temporal_heads(192) == (3, 64)
    assert temporal_heads(32) == (1, 32)
    assert temporal_heads(96) == (1, 96)
    for width in (32, 64, 96, 128, 256, 512, 768, 1024):
        heads, dim_head = temporal_heads(width)
        assert heads * dim_head == width
    with pytest.raises(ValueError):
        temporal_heads(0)


def _authors_keys(depth: int) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the authors' temporal_net at width 512, 16 frames."""
    keys = {"cls_token": (1, 1, 512), "pos_embedding": (1, 17, 512)}
    for i in range(depth):
        p = f"temporal_transformer.layers.{i}."
        keys.update(
            {
                p + "0.fn.norm.weight": (512,),
                p + "0.fn.norm.bias": (512,),
                p + "0.fn.fn.to_qkv.weight": (1536, 512),
                p + "0.fn.fn.to_out.0.weight": (512, 512),
                p + "0.fn.fn.to_out.0.bias": (512,),
                p + "1.fn.norm.weight": (512,),
                p + "1.fn.norm.bias": (512,),
                p + "1.fn.fn.net.0.weight": (1024, 512),
                p + "1.fn.fn.net.0.bias": (1024,),
                p + "1.fn.fn.net.3.weight": (512, 1024),
                p + "1.fn.fn.net.3.bias": (512,),
            }
        )
    return keys


@pytest.mark.parametrize("depth", [1, 2])
def test_state_dict_keys_are_the_authors(depth):
    net = build_temporal_model(512, depth=depth, num_frames=16)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == _authors_keys(depth)
    # An authors-style temporal_net state dict loads strictly, with no remapping.
    net.load_state_dict({k: torch.zeros(s) for k, s in _authors_keys(depth).items()}, strict=True)


def test_param_count_width512_depth1_by_hand():
    net = build_temporal_model(512, depth=1, num_frames=16)
    cls_token = 512
    pos_embedding = 17 * 512
    attn_norm = 512 + 512
    to_qkv = 512 * (3 * 8 * 64)  # no bias
    to_out = 512 * 512 + 512
    ff_norm = 512 + 512
    fc1 = 512 * 1024 + 1024
    fc2 = 1024 * 512 + 512
    expected = cls_token + pos_embedding + attn_norm + to_qkv + to_out + ff_norm + fc1 + fc2
    assert expected == 2_110_464
    assert sum(p.numel() for p in net.parameters()) == expected
    attn = net.temporal_transformer.layers[0][0].fn.fn
    assert (attn.heads, attn.dim_head, attn.scale) == (8, 64, 64 ** -0.5)
    assert attn.to_qkv.bias is None and attn.to_out[0].bias is not None
    assert isinstance(net.temporal_transformer.layers[0][1].fn.fn.net[1], torch.nn.GELU)
    assert net.temporal_transformer.layers[0][1].fn.fn.net[1].approximate == "tanh"


def test_class_token_and_positional_embedding_init_std_one():
    torch.manual_seed(0)
    net = TemporalTransformerCls(num_frames=16, width=512, depth=1)
    pos = net.pos_embedding.detach()
    cls = net.cls_token.detach()
    assert abs(pos.std().item() - 1.0) < 0.03 and abs(pos.mean().item()) < 0.04
    assert abs(cls.std().item() - 1.0) < 0.1 and abs(cls.mean().item()) < 0.15


def test_depth0_is_frame_mean_without_parameters():
    net = build_temporal_model(512, depth=0)
    assert isinstance(net, TemporalMean)
    assert list(net.parameters()) == [] and net.state_dict() == {}
    x = torch.randn(3, 16, 512)
    torch.testing.assert_close(net(x), x.mean(dim=1), rtol=0, atol=0)


def test_fewer_frames_ok_more_frames_rejected():
    net = build_temporal_model(64, depth=1, num_frames=16)
    assert net(torch.randn(2, 5, 64)).shape == (2, 64)
    with pytest.raises(ValueError, match="at most 16"):
        net(torch.randn(2, 17, 64))


# --- an independent reference forward in plain tensor ops -----------------------------


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _reference_forward(sd, x, heads, dim_head, depth):
    b, t, d = x.shape
    h = torch.cat([sd["cls_token"].expand(b, 1, d), x], dim=1) + sd["pos_embedding"][:, : t + 1]
    inner = heads * dim_head
    for i in range(depth):
        p = f"temporal_transformer.layers.{i}."
        y = _layer_norm(h, sd[p + "0.fn.norm.weight"], sd[p + "0.fn.norm.bias"])
        qkv = y @ sd[p + "0.fn.fn.to_qkv.weight"].T
        q, k, v = qkv[..., :inner], qkv[..., inner : 2 * inner], qkv[..., 2 * inner :]
        outs = []
        for j in range(heads):
            s = slice(j * dim_head, (j + 1) * dim_head)
            scores = q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(dim_head)
            outs.append(torch.softmax(scores, dim=-1) @ v[..., s])
        o = torch.cat(outs, dim=-1)
        if p + "0.fn.fn.to_out.0.weight" in sd:
            o = o @ sd[p + "0.fn.fn.to_out.0.weight"].T + sd[p + "0.fn.fn.to_out.0.bias"]
        h = h + o
        y = _layer_norm(h, sd[p + "1.fn.norm.weight"], sd[p + "1.fn.norm.bias"])
        y = _gelu_tanh(y @ sd[p + "1.fn.fn.net.0.weight"].T + sd[p + "1.fn.fn.net.0.bias"])
        h = h + y @ sd[p + "1.fn.fn.net.3.weight"].T + sd[p + "1.fn.fn.net.3.bias"]
    return h[:, 0]  # the class token; no final LayerNorm


@pytest.mark.parametrize("width,depth,frames", [(128, 2, 16), (128, 1, 5), (32, 1, 7)])
def test_forward_matches_hand_written_reference(width, depth, frames):
    torch.manual_seed(1)
    net = build_temporal_model(width, depth=depth, num_frames=16).eval()
    with torch.no_grad():  # make LayerNorm affine params and biases non-trivial
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    heads, dim_head = temporal_heads(width)
    if width == 32:  # one head spanning the width: no output projection (authors' rule)
        assert not any("to_out" in k for k in net.state_dict())
    x = torch.randn(3, frames, width)
    sd64 = {k: v.double() for k, v in net.state_dict().items()}
    ref = _reference_forward(sd64, x.double(), heads, dim_head, depth)
    with torch.no_grad():
        out32 = net(x)
        out64 = net.double()(x.double())
    torch.testing.assert_close(out64, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out32, ref.float(), rtol=1e-5, atol=2e-5)
