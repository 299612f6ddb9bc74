"""FaRL weights in open_clip: a face-domain CLIP for zero-shot baselines.

FaRL (Zheng et al., "General Facial Representation Learning in a Visual-Linguistic
Manner", CVPR 2022) is a ViT-B/16 CLIP pre-trained on LAION-Face 20M with an image-text
contrastive loss plus masked image modelling (MIM). Its released files, e.g.
``FaRL-Base-Patch16-LAIONFace20M-ep16.pth`` (the one the DFER-CLIP paper uses), hold
``{"state_dict": ...}`` in OpenAI-CLIP key format, text and image towers, plus the MIM
head under ``visual.`` (``lm_transformer``, ``ln_lm``, ``lm_head``, ``mask_token``).
Any format :func:`dferbench.models.weight_files.read_clip_state_dict` reads is accepted
(a re-saved state dict, safetensors, ``module.`` prefixes).

They load into open_clip's ``ViT-B-16-quickgelu`` (QuickGELU, as FaRL was trained)
non-strictly: the MIM keys are ignored, every CLIP key must be present.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dferbench.errors import DferbenchError

if TYPE_CHECKING:  # imported when weights load: registering the model stays light
    import open_clip
    import torch

__all__ = ["FARL_FILE", "FARL_URL", "MIM_PREFIXES", "farl_source", "load_farl"]

FARL_FILE = "FaRL-Base-Patch16-LAIONFace20M-ep16.pth"
FARL_URL = "https://github.com/FacePerceiver/FaRL#pre-trained-backbones"
MIM_PREFIXES = ("visual.lm_transformer.", "visual.ln_lm.", "visual.lm_head.", "visual.mask_token")


def farl_source() -> str:
    """Where FaRL's weights come from and how to point dferbench at them (one sentence)."""
    return (f"download {FARL_FILE} (the file the DFER-CLIP paper used) from {FARL_URL} and pass its path "
            "with --set model.pretrained=PATH")


def load_farl(path: str | os.PathLike, model_name: str = "ViT-B-16-quickgelu", *,
              device: str | torch.device = "cpu") -> tuple[open_clip.CLIP, Any, dict[str, Any]]:
    """Build open_clip ``model_name`` and load FaRL's weights from ``path``.

    Returns ``(model, tokenizer, report)``: the fp32 model in eval mode, its tokenizer,
    and what was done (``ignored_mim_keys``, ``ignored_other_keys``, ``skipped_objects``:
    pickled non-tensor objects that were not loaded). Raises :class:`DferbenchError` when
    the file is missing, cannot be read without running code, or is not a FaRL/CLIP
    checkpoint that fits ``model_name``.
    """
    import open_clip

    from dferbench.models.clip import register_model_configs
    from dferbench.models.weight_files import read_clip_state_dict

    path = Path(path)
    if not path.is_file():
        raise DferbenchError(f"FaRL weights not found at {str(path)!r} (resolved: {path.resolve()}): {farl_source()}")
    register_model_configs()
    if open_clip.get_model_config(model_name) is None:
        raise DferbenchError(f"unknown open_clip model {model_name!r} for the FaRL weights; FaRL is ViT-B-16-quickgelu")
    try:
        state, info = read_clip_state_dict(path)
    except DferbenchError as exc:
        raise DferbenchError(f"{exc} (FaRL weights: {farl_source()})") from None
    skipped = info["skipped_objects"]
    if not any(k.startswith("visual.") for k in state):
        raise DferbenchError(f"{path} has no image-tower keys (visual.*; first keys: {', '.join(list(state)[:4])}): "
                             f"it is not a FaRL/CLIP checkpoint: {farl_source()}")

    model = open_clip.create_model(model_name, pretrained=None, precision="fp32", device="cpu")
    mim = sorted(k for k in state if k.startswith(MIM_PREFIXES))
    clip_state = {k: v for k, v in state.items() if not k.startswith(MIM_PREFIXES)}
    try:
        result = model.load_state_dict(clip_state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even when not strict
        raise DferbenchError(f"{path} does not fit open_clip {model_name!r}: {exc}") from None
    missing = [k for k in result.missing_keys if k != "logit_bias"]
    if missing:
        raise DferbenchError(
            f"{path} lacks {len(missing)} weights of open_clip {model_name!r} (e.g. {', '.join(missing[:3])}): "
            "zero-shot FaRL needs both the image and the text tower"
        )
    model.to(device).eval()
    report = {"ignored_mim_keys": len(mim), "ignored_other_keys": sorted(result.unexpected_keys),
              "skipped_objects": skipped}
    return model, open_clip.get_tokenizer(model_name), report
