"""The DFER-CLIP temporal model.

Zhao & Patras, "Prompting Visual-Language Models for Dynamic Facial Expression
Recognition" (BMVC 2023), Sec. 3: per-frame CLIP image features ``[B, T, D]`` are
aggregated by a small transformer over time; a learnable class token is prepended and its
final state is the video feature.

The module tree mirrors the authors' ``Temporal_Transformer_Cls`` so their ``temporal_net``
state dicts load without key remapping::

    cls_token                                            [1, 1, D]
    pos_embedding                                        [1, T + 1, D]
    temporal_transformer.layers.{i}.0.fn.norm            LayerNorm(D)
    temporal_transformer.layers.{i}.0.fn.fn.to_qkv       Linear(D, 3 * inner, bias=False)
    temporal_transformer.layers.{i}.0.fn.fn.to_out.0     Linear(inner, D)
    temporal_transformer.layers.{i}.1.fn.norm            LayerNorm(D)
    temporal_transformer.layers.{i}.1.fn.fn.net.0        Linear(D, mlp_dim)
    temporal_transformer.layers.{i}.1.fn.fn.net.3        Linear(mlp_dim, D)

(``layers.{i}.0`` is ``Residual(PreNorm(Attention))``, ``layers.{i}.1`` is
``Residual(PreNorm(FeedForward))``; the dropouts, all p=0, keep the Sequential indices.)

Head rule for widths other than the paper's 512 (see :func:`temporal_heads`):
``dim_head = 64`` when ``width`` is a multiple of 64, otherwise ``dim_head = width``;
``heads = width // dim_head``. Width 512 gives the paper's 8 heads x 64; the inner width
always equals ``width``. MLP width is ``2 * width`` (1024 for 512).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "temporal_heads",
    "Residual",
    "PreNorm",
    "TemporalAttention",
    "FeedForward",
    "TemporalTransformer",
    "TemporalTransformerCls",
    "TemporalMean",
    "build_temporal_model",
]


def temporal_heads(width: int) -> tuple[int, int]:
    """``(heads, dim_head)`` for a temporal transformer of ``width``.

    ``dim_head`` is 64 (the paper's value) when ``width % 64 == 0``, else a single head
    spans the whole width. Either way ``heads * dim_head == width``: 512 -> (8, 64),
    128 -> (2, 64), 32 -> (1, 32).
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    dim_head = 64 if width % 64 == 0 else width
    return width // dim_head, dim_head


class Residual(nn.Module):
    """``x + fn(x)``."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class PreNorm(nn.Module):
    """``fn(LayerNorm(x))``."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class TemporalAttention(nn.Module):
    """Multi-head self-attention: qkv without bias, scale ``dim_head ** -0.5``.

    As in the authors' code, the output projection (``Linear(inner, dim)`` with bias) is
    omitted only when a single head spans the whole width (``heads == 1`` and
    ``dim_head == dim``), which never happens at the paper's width 512.

    Off the CPU (CUDA) the attention runs in PyTorch's fused
    ``scaled_dot_product_attention``; on the CPU it is computed step by step as in the
    authors' code, bit for bit (SDPA agrees to ~1e-7 but not exactly there).
    ``use_sdpa = True/False`` forces either.
    """

    use_sdpa: bool | None = None

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner_dim = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)
        project_out = not (heads == 1 and dim_head == dim)
        if project_out:
            self.to_out = nn.Sequential(nn.Linear(inner_dim, dim), nn.Dropout(dropout))
        else:
            self.to_out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape  # [B, N, D]
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)  # 3 x [B, N, h * d]
        q, k, v = (t.reshape(b, n, self.heads, self.dim_head).transpose(1, 2) for t in (q, k, v))
        if self.use_sdpa if self.use_sdpa is not None else x.device.type != "cpu":
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # [B, h, N, d]
        else:
            dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale  # [B, h, N, N]
            attn = dots.softmax(dim=-1)
            out = torch.matmul(attn, v)  # [B, h, N, d]
        out = out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head)  # [B, N, h * d]
        return self.to_out(out)


class FeedForward(nn.Module):
    """``Linear(dim, hidden) -> GELU (tanh approximation) -> Linear(hidden, dim)``."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalTransformer(nn.Module):
    """``depth`` pre-norm blocks (attention, then MLP), with no final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Residual(PreNorm(dim, TemporalAttention(dim, heads, dim_head, dropout))),
                    Residual(PreNorm(dim, FeedForward(dim, mlp_dim, dropout))),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x)  # [B, N, D]
            x = ff(x)  # [B, N, D]
        return x


class TemporalTransformerCls(nn.Module):
    """DFER-CLIP's temporal model: class token + positional embedding + transformer.

    Args:
        num_frames: maximum number of frames T (16 in the paper); clips with fewer frames
            use the first ``T' + 1`` positional embeddings, as in the authors' code.
        width: feature width D (CLIP's projected width, 512 for ViT-B/32).
        depth: number of transformer blocks (>= 1; use :class:`TemporalMean` for 0).
        heads, dim_head: attention shape; default from :func:`temporal_heads`.
        mlp_dim: MLP hidden width; default ``2 * width``.

    ``cls_token`` and ``pos_embedding`` are initialised with ``torch.randn`` (std 1);
    linear and LayerNorm layers keep PyTorch's default init, as in the authors' code.
    """

    def __init__(
        self,
        num_frames: int,
        width: int,
        depth: int,
        heads: int | None = None,
        dim_head: int | None = None,
        mlp_dim: int | None = None,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError("TemporalTransformerCls needs depth >= 1 (depth 0 is TemporalMean)")
        default_heads, default_dim_head = temporal_heads(width)
        self.num_frames = num_frames
        self.width = width
        self.depth = depth
        self.heads = default_heads if heads is None else heads
        self.dim_head = default_dim_head if dim_head is None else dim_head
        self.mlp_dim = 2 * width if mlp_dim is None else mlp_dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, width))
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames + 1, width))
        self.temporal_transformer = TemporalTransformer(width, depth, self.heads, self.dim_head, self.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape  # [B, T, D]
        if t > self.num_frames:
            raise ValueError(f"got {t} frames; this temporal model was built for at most {self.num_frames}")
        cls_tokens = self.cls_token.expand(b, -1, -1)  # [B, 1, D]
        x = torch.cat((cls_tokens, x), dim=1)  # [B, T + 1, D]
        x = x + self.pos_embedding[:, : t + 1]
        x = self.temporal_transformer(x)  # [B, T + 1, D]
        return x[:, 0]  # [B, D]


class TemporalMean(nn.Module):
    """Temporal depth 0: the mean of the frame features (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)  # [B, T, D] -> [B, D]


def build_temporal_model(width: int, depth: int = 1, num_frames: int = 16) -> nn.Module:
    """The temporal model DFER-CLIP uses for ``depth`` (0 = frame mean, >= 1 = transformer)."""
    if depth < 0:
        raise ValueError(f"temporal depth must be >= 0, got {depth}")
    if depth == 0:
        return TemporalMean()
    return TemporalTransformerCls(num_frames=num_frames, width=width, depth=depth)
