"""The CLIP architecture inside a DFER-CLIP state dict: inferred from tensor shapes (the
authors' files), described as an open_clip config (dferbench's checkpoint sidecars)."""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Mapping

import open_clip
import torch
from open_clip.transformer import QuickGELU

from dferbench import build_clip_from_config
from dferbench_plugins.dferclip.network import DFERCLIP

logger = logging.getLogger(__name__)

KNOWN_OPENAI_ARCHITECTURES = ("ViT-B-32-quickgelu", "ViT-B-16-quickgelu", "ViT-L-14-quickgelu")
"""open_clip names tried, in order, when matching an OpenAI-format CLIP by its shapes."""


def _count_blocks(state_dict: Mapping[str, Any], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    if indices and indices != set(range(len(indices))):
        raise ValueError(f"non-contiguous block indices under {prefix!r}: {sorted(indices)}")
    return len(indices)


def _normalised_arch(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The fields shape inference can see, with open_clip's defaults filled in."""
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    image_size = vision.get("image_size", 224)
    patch_size = vision.get("patch_size", 16)
    return {
        "embed_dim": cfg["embed_dim"],
        "quick_gelu": bool(cfg.get("quick_gelu", False)),
        "vision": (
            image_size if isinstance(image_size, int) else tuple(image_size),
            patch_size if isinstance(patch_size, int) else tuple(patch_size),
            vision.get("width", 768),
            vision.get("layers", 12),
            vision.get("head_width", 64),
            float(vision.get("mlp_ratio", 4.0)),
        ),
        "text": (
            text.get("context_length", 77),
            text.get("vocab_size", 49408),
            text.get("width", 512),
            text.get("heads", 8),
            text.get("layers", 12),
            float(text.get("mlp_ratio", 4.0)),
        ),
    }


def _shapes_only(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`_normalised_arch` without the head counts, which tensor shapes do not show."""
    arch = _normalised_arch(cfg)
    arch["vision"] = arch["vision"][:4] + arch["vision"][5:]
    arch["text"] = arch["text"][:3] + arch["text"][4:]
    return arch


def infer_clip_architecture(
    state_dict: Mapping[str, torch.Tensor],
    *,
    visual_prefix: str = "image_encoder.",
    text_prefix: str = "text_encoder.",
) -> tuple[str | None, dict[str, Any]]:
    """Infer an OpenAI-format ViT CLIP's architecture from tensor shapes.

    Reads the vision width/patch (``conv1``), image size (positional embedding grid),
    layers (resblock count), MLP ratio, embed dim (``proj``), and the text width, context
    length, layers, vocabulary (token embedding, default 49408). Head counts cannot be
    seen in shapes; OpenAI's convention (64 dims per head in both towers) is assumed, and
    QuickGELU, as in every OpenAI CLIP.

    Returns:
        ``(name, cfg)``: ``name`` is the open_clip model (one of
        :data:`KNOWN_OPENAI_ARCHITECTURES`, e.g. ``"ViT-B-32-quickgelu"``) whose config
        matches, else None; ``cfg`` is an open_clip config dict either way.
    """
    vp, tp = visual_prefix, text_prefix
    if vp + "conv1.weight" not in state_dict:
        raise ValueError(
            f"no {vp}conv1.weight: only ViT CLIP image encoders are supported"
            + (" (this looks like a ResNet CLIP)" if any(k.startswith(vp + "layer1.") for k in state_dict) else "")
        )
    conv = state_dict[vp + "conv1.weight"]  # [width, 3, patch, patch]
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    n_pos = int(state_dict[vp + "positional_embedding"].shape[0])  # grid * grid + 1
    grid = math.isqrt(n_pos - 1)
    if grid * grid != n_pos - 1:
        raise ValueError(f"vision positional embedding of length {n_pos} is not a square grid + 1")
    vision_layers = _count_blocks(state_dict, vp + "transformer.resblocks.")
    vision_mlp = int(state_dict[vp + "transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
    embed_dim = int(state_dict[vp + "proj"].shape[1])

    text_pos = state_dict[tp + "positional_embedding"]  # [context, text width]
    context_length, text_width = int(text_pos.shape[0]), int(text_pos.shape[1])
    text_layers = _count_blocks(state_dict, tp + "transformer.resblocks.")
    text_mlp = int(state_dict[tp + "transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
    text_embed = int(state_dict[tp + "text_projection"].shape[1])
    if text_embed != embed_dim:
        raise ValueError(f"text projection width {text_embed} != vision projection width {embed_dim}")
    token_embedding = state_dict.get(tp + "token_embedding.weight")
    vocab_size = int(token_embedding.shape[0]) if token_embedding is not None else 49408

    vision_cfg: dict[str, Any] = {
        "image_size": grid * patch,
        "layers": vision_layers,
        "width": width,
        "patch_size": patch,
    }
    if vision_mlp != 4 * width:
        vision_cfg["mlp_ratio"] = vision_mlp / width
    text_cfg: dict[str, Any] = {
        "context_length": context_length,
        "vocab_size": vocab_size,
        "width": text_width,
        "heads": max(1, text_width // 64),
        "layers": text_layers,
    }
    if text_mlp != 4 * text_width:
        text_cfg["mlp_ratio"] = text_mlp / text_width
    cfg = {"embed_dim": embed_dim, "quick_gelu": True, "vision_cfg": vision_cfg, "text_cfg": text_cfg}
    if width % 64:
        # head_width 64 does not divide the width: fall back to one head per tower.
        vision_cfg["head_width"] = width

    wanted = _normalised_arch(cfg)
    for name in KNOWN_OPENAI_ARCHITECTURES:
        known = open_clip.get_model_config(name)
        if known is not None and _normalised_arch(known) == wanted:
            return name, cfg
    return None, cfg


def describe_clip_architecture(model: DFERCLIP) -> dict[str, Any]:
    """open_clip config dict of the CLIP inside ``model``, read from its modules.

    Unlike :func:`infer_clip_architecture` this sees head counts and the activation.
    The result is checked by building the architecture on the meta device and comparing
    state-dict keys, shapes and pooling settings; unsupported variants raise ValueError.
    """
    visual, text = model.image_encoder, model.text_encoder
    try:
        v_block = visual.transformer.resblocks[0]
        t_block = text.transformer.resblocks[0]
        width = int(visual.conv1.out_channels)
        image_size, patch_size = visual.image_size, visual.patch_size
        vision_cfg: dict[str, Any] = {
            "image_size": int(image_size[0]) if image_size[0] == image_size[1] else list(image_size),
            "layers": len(visual.transformer.resblocks),
            "width": width,
            "patch_size": int(patch_size[0]) if patch_size[0] == patch_size[1] else list(patch_size),
            "head_width": width // int(v_block.attn.num_heads),
            "mlp_ratio": v_block.mlp.c_fc.out_features / width,
        }
        text_cfg: dict[str, Any] = {
            "context_length": int(text.context_length),
            "vocab_size": int(text.token_embedding.num_embeddings),
            "width": int(text.width),
            "heads": int(t_block.attn.num_heads),
            "layers": len(text.transformer.resblocks),
            "mlp_ratio": t_block.mlp.c_fc.out_features / int(text.width),
        }
        quick_gelu = isinstance(v_block.mlp.gelu, QuickGELU)
        if quick_gelu != isinstance(t_block.mlp.gelu, QuickGELU):
            raise ValueError("the vision and text towers use different activations")
    except (AttributeError, IndexError, TypeError) as err:
        raise ValueError(
            f"cannot describe this CLIP ({type(visual).__name__}) as an open_clip ViT config: {err}"
        ) from err
    cfg = {"embed_dim": int(model.embed_dim), "quick_gelu": quick_gelu, "vision_cfg": vision_cfg, "text_cfg": text_cfg}

    with torch.device("meta"):
        rebuilt = build_clip_from_config(cfg, device=None)
    expected = {f"image_encoder.{k}": v.shape for k, v in rebuilt.visual.state_dict().items()}
    expected.update(
        {f"text_encoder.{k}": v.shape for k, v in rebuilt.state_dict().items() if not k.startswith("visual.")}
    )
    expected.pop("text_encoder.logit_scale", None)
    actual = {
        k: v.shape
        for k, v in model.state_dict().items()
        if k.startswith("image_encoder.") or k.startswith("text_encoder.")
    }
    same_behaviour = (
        getattr(rebuilt.visual, "pool_type", None) == getattr(visual, "pool_type", None)
        and getattr(rebuilt.visual, "final_ln_after_pool", None) == getattr(visual, "final_ln_after_pool", None)
        and rebuilt.text_pool_type == text.pool_type
    )
    if expected != actual or not same_behaviour:
        diff = sorted(set(expected.items()) ^ set(actual.items()))[:5]
        raise ValueError(
            "this CLIP variant cannot be described by a plain open_clip ViT config "
            f"(first differences: {diff}; pooling matches: {same_behaviour})"
        )
    return cfg
