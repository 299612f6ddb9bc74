"""CoOp and Co-CoOp on video: learnable prompt context against frame-averaged CLIP features.

CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022) learns the
context vectors of a prompt ``[SOS] ctx_1 .. ctx_M <class name>. [EOS]`` read by the
frozen CLIP text encoder; the image encoder and CLIP's ``logit_scale`` are frozen too.
Co-CoOp (Zhou et al., "Conditional Prompt Learning for Vision-Language Models", CVPR
2022) adds a meta-net whose output, computed from the image feature, shifts every
context vector, so each clip gets its own prompts.

Video: the image encoder runs on every sampled frame; the video feature is the mean of
the frame features, L2-normalised (no temporal model). Inputs may be video
``[B, T, 3, H, W]``, cached frame features ``[B, T, E]`` or video features ``[B, E]``, so
the same module trains on clips or on frozen features from the cache.

Both run the text encoder only up to the last EOT position: the text attention is causal
and features are pooled at EOT, so the tokens after it cannot change the result, and
dropping them cuts the text encoder's time and memory by ``77 / (1 + M + name + 1)``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

from dferbench import PromptLearner, TextEncoder, coop_name_lens, full_precision

__all__ = ["CoOp", "CoCoOp", "encode_prompts", "pool_positions", "saved_activation_bytes"]


def pool_positions(text_encoder: TextEncoder, tokenized: torch.Tensor) -> torch.Tensor | None:
    """Index of the pooled (EOT) token per prompt, or None when pooling is not at one token."""
    if text_encoder.pool_type == "argmax":
        return tokenized.argmax(dim=-1)
    if text_encoder.pool_type == "eos" and text_encoder.eos_id is not None:
        return (tokenized == text_encoder.eos_id).int().argmax(dim=-1)
    return None


def encode_prompts(text_encoder: TextEncoder, prompts: torch.Tensor, tokenized: torch.Tensor) -> torch.Tensor:
    """:class:`TextEncoder` on ``prompts [N, L', W]`` whose length ``L'`` may be cut
    after the last EOT (``L' <= L``); ``tokenized [N, L]`` are the full token ids.

    Returns un-normalised text features ``[N, E]``, equal to the full-length encoding.
    """
    n = prompts.shape[1]
    if n == text_encoder.context_length:
        return text_encoder(prompts, tokenized)
    cast_dtype = text_encoder.dtype
    x = prompts.to(cast_dtype) + text_encoder.positional_embedding[:n].to(cast_dtype)  # [N, n, W]
    x = text_encoder.transformer(x, attn_mask=text_encoder.attn_mask[:n, :n])  # [N, n, W]
    x = text_encoder.ln_final(x)
    x = text_global_pool(x, tokenized[:, :n], text_encoder.pool_type, eos_token_id=text_encoder.eos_id)  # [N, W]
    if isinstance(text_encoder.text_projection, nn.Linear):
        return text_encoder.text_projection(x)
    if text_encoder.text_projection is not None:
        return x @ text_encoder.text_projection  # [N, E]
    return x


class _FrozenCLIPPrompting(nn.Module):
    """Shared parts: frozen image and text encoders, CLIP's frozen scale, the prompt learner."""

    def __init__(self, clip_model: nn.Module, prompt_learner: PromptLearner, truncate: bool):
        super().__init__()
        self.prompt_learner = prompt_learner
        self.text_encoder = TextEncoder(clip_model, freeze=True)
        self.image_encoder = clip_model.visual
        for p in self.image_encoder.parameters():
            p.requires_grad_(False)
        # A frozen copy of exp(logit_scale): CoOp never updates it.
        self.register_buffer("logit_scale", clip_model.logit_scale.detach().float().exp().reshape(()).clone())
        positions = pool_positions(self.text_encoder, prompt_learner.tokenized_prompts)
        can_truncate = truncate and positions is not None and self.text_encoder.attn_mask is not None
        # Tokens kept per prompt: up to and including the last EOT.
        self.n_tokens = int(positions.max()) + 1 if can_truncate else self.text_encoder.context_length

    def train(self, mode: bool = True) -> _FrozenCLIPPrompting:
        super().train(mode)
        self.image_encoder.eval()  # frozen: no dropout or norm-statistics updates
        self.text_encoder.eval()
        return self

    def video_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Video ``[B, T, 3, H, W]``, frame features ``[B, T, E]`` or video features
        ``[B, E]`` -> L2-normalised video features ``[B, E]`` (mean over frames)."""
        if inputs.dim() == 5:
            b, t = inputs.shape[:2]
            dtype = next(self.image_encoder.parameters()).dtype
            with torch.no_grad():
                frames = self.image_encoder(inputs.flatten(0, 1).to(dtype))  # [B*T, E]
            inputs = frames.reshape(b, t, -1)  # [B, T, E]
        if inputs.dim() == 3:
            inputs = inputs.mean(dim=1)  # [B, E]
        if inputs.dim() != 2:
            raise ValueError(f"expected video [B, T, 3, H, W] or features [B, T, E] / [B, E], "
                             f"got {tuple(inputs.shape)}")
        return F.normalize(inputs.float(), dim=-1)

    @property
    def tokenized_prompts(self) -> torch.Tensor:
        return self.prompt_learner.tokenized_prompts  # [C, L]


class CoOp(_FrozenCLIPPrompting):
    """CoOp: ``logits = exp(logit_scale) * cos(video feature, text feature of each class)``.

    Args:
        clip_model: an open_clip ``CLIP``; its towers are frozen (shared, not copied).
        class_texts: one text per class, used verbatim (CoOp's form is ``"<name>."``).
        tokenizer: the model's open_clip tokenizer.
        n_ctx: context vectors M (CoOp: 16); ignored with ``ctx_init`` (its word count).
        class_specific: one context per class (CSC) or a generic one (CoOp's default).
        class_token_position: ``"end"`` (default), ``"middle"`` or ``"front"`` (these move the
            class name; a final ``"."`` stays at the end, as in CoOp's prompts).
        ctx_init: initialise a generic context from this phrase instead of N(0, 0.02).
        truncate: run the text encoder only up to the last EOT token (exact; see module doc).

    Only ``prompt_learner.ctx`` trains.
    """

    def __init__(self, clip_model: nn.Module, class_texts: Sequence[str], *, tokenizer: Callable[..., torch.Tensor],
                 n_ctx: int = 16, class_specific: bool = False, class_token_position: str = "end",
                 ctx_init: str | None = None, truncate: bool = True):
        learner = PromptLearner(clip_model, tokenizer, class_texts, n_ctx=None if ctx_init else n_ctx,
                                class_specific=class_specific, class_token_position=class_token_position,
                                ctx_init=ctx_init or None, name_lens=coop_name_lens(tokenizer, class_texts))
        super().__init__(clip_model, learner, truncate)

    def text_features(self) -> torch.Tensor:
        """L2-normalised class text features ``[C, E]`` from the current context."""
        prompts = self.prompt_learner()[:, : self.n_tokens]  # [C, n, W]
        return F.normalize(encode_prompts(self.text_encoder, prompts, self.tokenized_prompts).float(), dim=-1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Video or features (see :meth:`video_features`) -> logits ``[B, C]``."""
        video = self.video_features(inputs)  # [B, E]
        text = self.text_features()  # [C, E]
        with full_precision(video):
            return self.logit_scale * video @ text.t()  # [B, C]


class CoCoOp(_FrozenCLIPPrompting):
    """Co-CoOp: CoOp's generic context shifted per clip by ``meta_net(video feature)``.

    ``meta_net`` is ``Linear(E, E // 16) -> ReLU -> Linear(E // 16, W)`` (E: image feature
    width, W: text width), fed the L2-normalised video feature; its output is added to
    every context vector. Class token at the end, no class-specific context (as published).

    The forward is batched: the ``[B, C, n, W]`` prompts of a batch go through the text
    encoder as one ``[B*C, n, W]`` batch. Trainable: ``prompt_learner.ctx`` and ``meta_net``.
    """

    def __init__(self, clip_model: nn.Module, class_texts: Sequence[str], *, tokenizer: Callable[..., torch.Tensor],
                 n_ctx: int = 4, ctx_init: str | None = "a photo of a", truncate: bool = True):
        learner = PromptLearner(clip_model, tokenizer, class_texts, n_ctx=None if ctx_init else n_ctx,
                                class_specific=False, class_token_position="end", ctx_init=ctx_init or None)
        super().__init__(clip_model, learner, truncate)
        vis_dim = self.image_encoder.output_dim
        ctx_dim = learner.ctx_dim
        if vis_dim < 16:
            raise ValueError(f"Co-CoOp's meta-net needs an image feature width of at least 16, got {vis_dim}")
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, vis_dim // 16)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(vis_dim // 16, ctx_dim)),
        ])).to(learner.ctx.device)

    def prompts(self, video: torch.Tensor) -> torch.Tensor:
        """Per-clip prompt embeddings ``[B, C, n, W]`` for normalised video features ``[B, E]``."""
        learner = self.prompt_learner
        b, c, m = video.shape[0], learner.n_cls, learner.n_ctx
        bias = self.meta_net(video.to(learner.ctx.dtype))  # [B, W]
        ctx = learner.ctx.unsqueeze(0) + bias.unsqueeze(1)  # [B, M, W]
        ctx = ctx.unsqueeze(1).expand(-1, c, -1, -1)  # [B, C, M, W]
        prefix = learner.token_prefix.unsqueeze(0).expand(b, -1, -1, -1)  # [B, C, 1, W]
        suffix = learner.token_suffix[:, : self.n_tokens - 1 - m].unsqueeze(0).expand(b, -1, -1, -1)  # [B, C, n-1-M, W]
        return torch.cat([prefix, ctx, suffix], dim=2)  # [B, C, n, W]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Video or features (see :meth:`video_features`) -> logits ``[B, C]``."""
        video = self.video_features(inputs)  # [B, E]
        prompts = self.prompts(video)  # [B, C, n, W]
        b, c = prompts.shape[:2]
        tokenized = self.tokenized_prompts.repeat(b, 1)  # [B*C, L]
        text = encode_prompts(self.text_encoder, prompts.flatten(0, 1), tokenized)  # [B*C, E]
        text = F.normalize(text.float(), dim=-1).reshape(b, c, -1)  # [B, C, E]
        with full_precision(video):
            return self.logit_scale * torch.einsum("be,bce->bc", video, text)  # [B, C]


def saved_activation_bytes(module: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Memory of one training step (forward + cross-entropy + backward) of ``module``.

    ``saved_bytes``: the tensors autograd keeps for the backward pass, unique storages,
    parameters and buffers excluded: the activation memory that grows with the batch and
    is the same on any device (under autocast it includes the low-precision weight copies
    autograd keeps). ``cuda_peak_bytes``: ``torch.cuda.max_memory_allocated``
    over the step, when ``inputs`` are on a CUDA device (None otherwise).
    """
    own = {t.untyped_storage().data_ptr() for t in list(module.parameters()) + list(module.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    cuda = inputs.is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(module(inputs).float(), labels)
    loss.backward()
    peak = None
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    module.zero_grad(set_to_none=True)
    return {"saved_bytes": int(sum(seen.values())), "cuda_peak_bytes": peak}
