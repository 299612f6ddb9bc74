"""DFER-CLIP: CLIP image encoder + temporal model vs. learnable-prompt text features.

Zhao & Patras, "Prompting Visual-Language Models for Dynamic Facial Expression
Recognition", BMVC 2023 (arXiv 2308.13382). A clip ``[B, T, 3, H, W]`` is encoded frame
by frame by the (trainable) CLIP image encoder, aggregated by the temporal model and
L2-normalised. Each class text (an LLM-written description of the expression) is
prefixed by learnable context vectors and read by the frozen CLIP text encoder. Logits
are cosine similarities divided by a fixed temperature of 0.01 (CLIP's own
``logit_scale`` is not used).

Submodule names follow the authors' ``GenerateModel`` (``prompt_learner``,
``text_encoder``, ``image_encoder``, ``temporal_net``), so their state-dict keys apply
after removing DataParallel's ``module.`` prefix; unlike theirs, the whole CLIP model is
not registered a second time (their ``clip_model_.*`` keys), only its token embedding,
which lives in ``text_encoder.token_embedding``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from dferbench import PromptLearner, TextEncoder, build_temporal_model, default_tokenizer, full_precision

__all__ = ["DFERCLIP", "build_optimizer"]


class DFERCLIP(nn.Module):
    """The DFER-CLIP network.

    Args:
        clip_model: an open_clip ``CLIP``; its visual tower becomes ``image_encoder`` and
            its text tower (frozen here, shared parameters) ``text_encoder``.
        class_texts: one text per class, in label order.
        tokenizer: the model's open_clip tokenizer; default: open_clip's OpenAI BPE
            tokenizer with the model's context length.
        n_ctx: learnable context vectors per prompt (8 in the authors' scripts).
        class_specific: one context per class (the paper) or a shared one.
        class_token_position: ``"end"`` (the paper), ``"middle"`` or ``"front"``.
        temporal_depth: temporal transformer blocks (1 in the paper); 0 = frame mean.
        temperature: logits = cosine / temperature (0.01, i.e. x100).
        num_frames: frames per clip the temporal model is built for (16).
        clip_model_name: open_clip name of the backbone, recorded in checkpoints only.

    Trainable: ``image_encoder``, ``temporal_net`` and ``prompt_learner.ctx``. Frozen: the
    text encoder including the token embedding. The clip's ``logit_scale`` is unused.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        class_texts: Sequence[str],
        *,
        tokenizer: Callable[..., torch.Tensor] | None = None,
        n_ctx: int = 8,
        class_specific: bool = True,
        class_token_position: str = "end",
        temporal_depth: int = 1,
        temperature: float = 0.01,
        num_frames: int = 16,
        clip_model_name: str | None = None,
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if tokenizer is None:
            tokenizer = default_tokenizer(int(clip_model.positional_embedding.shape[0]))

        self.prompt_learner = PromptLearner(
            clip_model,
            tokenizer,
            class_texts,
            n_ctx=n_ctx,
            class_specific=class_specific,
            class_token_position=class_token_position,
        )
        self.text_encoder = TextEncoder(clip_model, freeze=True)
        self.image_encoder = clip_model.visual
        embed_dim = getattr(self.image_encoder, "output_dim", None)
        if embed_dim is None:
            raise TypeError(f"cannot tell the output width of {type(self.image_encoder).__name__}")
        self.temporal_net = build_temporal_model(embed_dim, depth=temporal_depth, num_frames=num_frames)

        for p in self.image_encoder.parameters():
            p.requires_grad_(True)
        for p in self.temporal_net.parameters():
            p.requires_grad_(True)
        self.prompt_learner.ctx.requires_grad_(True)

        self.embed_dim = embed_dim
        self.temperature = float(temperature)
        self.temporal_depth = temporal_depth
        self.num_frames = num_frames
        self.clip_model_name = clip_model_name

    @property
    def class_texts(self) -> list[str]:
        return list(self.prompt_learner.class_texts)

    def options(self) -> dict[str, Any]:
        """Constructor options (everything but the CLIP model and tokenizer)."""
        return {
            "class_texts": self.class_texts,
            "n_ctx": self.prompt_learner.n_ctx,
            "class_specific": self.prompt_learner.class_specific,
            "class_token_position": self.prompt_learner.class_token_position,
            "temporal_depth": self.temporal_depth,
            "temperature": self.temperature,
            "num_frames": self.num_frames,
            "clip_model_name": self.clip_model_name,
        }

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` -> L2-normalised video features ``[B, E]``."""
        if video.dim() != 5:
            raise ValueError(f"expected video [B, T, 3, H, W], got shape {tuple(video.shape)}")
        b, t, c, h, w = video.shape
        dtype = next(self.image_encoder.parameters()).dtype
        frames = video.reshape(b * t, c, h, w).to(dtype)  # [B*T, 3, H, W]
        features = self.image_encoder(frames)  # [B*T, E]
        features = features.reshape(b, t, -1)  # [B, T, E]
        video_features = self.temporal_net(features)  # [B, E]
        return video_features / video_features.norm(dim=-1, keepdim=True)

    def encode_text(self) -> torch.Tensor:
        """L2-normalised class text features ``[C, E]`` from the current prompts."""
        prompts = self.prompt_learner()  # [C, L, W]
        text_features = self.text_encoder(prompts, self.prompt_learner.tokenized_prompts)  # [C, E]
        return text_features / text_features.norm(dim=-1, keepdim=True)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` (float) -> logits ``[B, C]``."""
        video_features = self.encode_video(video)  # [B, E]
        text_features = self.encode_text()  # [C, E]
        with full_precision(video_features):
            return video_features.float() @ text_features.float().t() / self.temperature  # [B, C]

    def param_groups(
        self,
        lr_temporal: float = 1e-2,
        lr_image: float = 1e-5,
        lr_prompt: float = 1e-3,
    ) -> list[dict[str, Any]]:
        """The authors' three SGD parameter groups, in their order.

        ``temporal_net`` (lr 1e-2), ``image_encoder`` (1e-5), ``prompt_learner`` (the
        context, 1e-3). Each group carries a ``name``. Groups without trainable parameters
        (the temporal net at depth 0) are left out.
        """
        groups = []
        for name, module, lr in (
            ("temporal_net", self.temporal_net, lr_temporal),
            ("image_encoder", self.image_encoder, lr_image),
            ("prompt_learner", self.prompt_learner, lr_prompt),
        ):
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                groups.append({"name": name, "params": params, "lr": lr})
        return groups


def build_optimizer(
    model: DFERCLIP,
    epochs: int = 50,
    milestones: Iterable[int] = (30, 40),
    gamma: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    fused: bool | None = None,
    **lrs: float,
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.MultiStepLR]:
    """SGD + MultiStepLR as in the authors' script (scheduler stepped once per epoch).

    ``lrs`` are passed to :meth:`DFERCLIP.param_groups` (``lr_temporal``, ``lr_image``,
    ``lr_prompt``). Milestones at or past ``epochs`` never fire (a shortened run keeps
    the paper's schedule without complaint); ``epochs`` is accepted for symmetry.

    ``fused``: ``None`` (default) uses PyTorch's fused SGD kernel when every parameter is
    on a CUDA device (one kernel per step instead of a loop over parameter tensors) and
    PyTorch's default implementation otherwise, so CPU numbers are unchanged; ``False``
    forces the default (the authors' script), ``True`` requires fused.
    """
    milestones = sorted(int(m) for m in milestones)
    if any(m <= 0 for m in milestones):
        raise ValueError(f"milestones {milestones} must be positive epoch numbers")
    groups = model.param_groups(**lrs)
    if fused is None:
        fused = all(p.is_cuda for g in groups for p in g["params"])
    optimizer = torch.optim.SGD(
        groups, lr=groups[0]["lr"], momentum=momentum, weight_decay=weight_decay,
        **({"fused": True} if fused else {}),
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    return optimizer, scheduler
