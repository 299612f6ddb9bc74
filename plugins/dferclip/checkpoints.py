"""Loading the DFER-CLIP authors' released checkpoints.

The authors (zengqunzhao/DFER-CLIP, main.py) save
``torch.save({'epoch', 'state_dict', 'best_acc', 'optimizer', 'recorder'})`` where
``state_dict`` comes from a ``DataParallel``-wrapped ``GenerateModel`` (every key starts
with ``module.``) and holds the whole CLIP model a second time under ``clip_model_.``.
``recorder`` is an instance of ``RecorderMeter``, a class of their ``main.py``; pickling
it stores a reference to ``__main__.RecorderMeter``, so ``torch.load(weights_only=True)``
refuses the file and a plain ``torch.load`` would need (and import) their script.

This module reads such files without running their code: ``weights_only=True`` first;
if that fails, a restricted unpickler that only rebuilds tensors and plain containers and
turns every other pickled class or function into an inert placeholder (never importing
its module, never calling it). The state dict is then cleaned (``module.`` stripped,
``clip_model_.`` duplicates verified and dropped) and loaded into :class:`DFERCLIP`.

dferbench's own checkpoints are :mod:`dferbench.models.checkpoints`; rebuilding a
DFER-CLIP from one is :mod:`dferbench_plugins.dferclip.loading`.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import open_clip
import torch
from open_clip.transformer import QuickGELU

from dferbench.models.checkpoints import load_state
from dferbench.models.torch_checkpoint import Inert, read_torch_checkpoint
from dferbench.models.clip import build_clip_from_config, default_tokenizer, register_model_configs
from dferbench_plugins.dferclip.network import DFERCLIP

__all__ = [
    "LEGACY_FORMAT",
    "KNOWN_OPENAI_ARCHITECTURES",
    "AuthorsCheckpoint",
    "read_torch_checkpoint",
    "convert_authors_state_dict",
    "infer_clip_architecture",
    "describe_clip_architecture",
    "recover_class_texts",
    "load_authors_checkpoint",
]

logger = logging.getLogger(__name__)

LEGACY_FORMAT = "dferbench.dferclip"
"""The format tag of the sidecars dferbench wrote for DFER-CLIP before its generic format."""

KNOWN_OPENAI_ARCHITECTURES = ("ViT-B-32-quickgelu", "ViT-B-16-quickgelu", "ViT-L-14-quickgelu")
"""open_clip names tried, in order, when matching an OpenAI-format CLIP by its shapes."""


# --------------------------------------------------------------------------------------
# The authors' state dict
# --------------------------------------------------------------------------------------

# clip_model_.<key> in the authors' state dict -> where DFERCLIP keeps the same tensor.
_CLIP_DUPLICATE_PREFIXES = (
    ("clip_model_.visual.", "image_encoder."),
    ("clip_model_.transformer.", "text_encoder.transformer."),
    ("clip_model_.ln_final.", "text_encoder.ln_final."),
    ("clip_model_.positional_embedding", "text_encoder.positional_embedding"),
    ("clip_model_.text_projection", "text_encoder.text_projection"),
)
# Only stored under clip_model_ (the authors' TextEncoder has no token embedding).
_CLIP_ONLY_KEYS = {"clip_model_.token_embedding.weight": "text_encoder.token_embedding.weight"}


def convert_authors_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map the authors' ``GenerateModel`` state dict onto :class:`DFERCLIP` keys.

    * strips DataParallel's leading ``module.``;
    * ``clip_model_.*`` keys that duplicate ``image_encoder.*`` / ``text_encoder.*``
      tensors are checked to be equal (``torch.equal``) and dropped; a mismatch is an
      error (the file is not what the authors' script writes);
    * ``clip_model_.token_embedding.weight`` becomes ``text_encoder.token_embedding.weight``;
    * ``clip_model_.logit_scale`` (unused by DFER-CLIP) and any other ``clip_model_.*``
      key are dropped.

    Returns ``(converted, dropped_keys)``.
    """
    stripped = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    converted: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    duplicates: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in stripped.items():
        if not key.startswith("clip_model_."):
            converted[key] = value
            continue
        if key in _CLIP_ONLY_KEYS:
            converted[_CLIP_ONLY_KEYS[key]] = value
            continue
        for src, dst in _CLIP_DUPLICATE_PREFIXES:
            if key.startswith(src):
                duplicates[key] = (dst + key[len(src) :], value)
                break
        else:
            dropped.append(key)

    mismatched = []
    for key, (target, value) in duplicates.items():
        if target not in converted:
            converted[target] = value  # only the duplicate survived: use it
            continue
        primary = converted[target]
        if primary.shape != value.shape or not torch.equal(primary, value):
            mismatched.append(f"{key} != {target}")
        dropped.append(key)
    if mismatched:
        raise ValueError(
            "the checkpoint's clip_model_ copy disagrees with the tensors it should duplicate: "
            + "; ".join(mismatched[:10])
            + (f" (and {len(mismatched) - 10} more)" if len(mismatched) > 10 else "")
        )
    return converted, dropped


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


# --------------------------------------------------------------------------------------
# Loading the authors' checkpoints
# --------------------------------------------------------------------------------------


def _tidy_decoded(text: str) -> str:
    """Undo the BPE decoder's spacing before punctuation: ``"eyes , and"`` -> ``"eyes, and"``."""
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


@torch.no_grad()
def recover_class_texts(
    token_suffix: torch.Tensor,
    token_embedding: torch.Tensor,
    tokenizer: Any,
) -> list[str]:
    """Read the class texts back from a prompt learner's frozen ``token_suffix`` buffer.

    The buffer holds ``token_embedding[ids]`` of each class's text tokens, EOT and
    padding, so the ids are recovered by exact nearest-row matching and decoded.

    Args:
        token_suffix: ``[C, S, W]``.
        token_embedding: ``[V, W]`` embedding matrix the buffer was built from.
        tokenizer: open_clip ``SimpleTokenizer`` (needs ``decode`` and ``eot_token_id``).
    """
    weight = token_embedding.float()
    eot = int(tokenizer.eot_token_id)
    texts = []
    for i, rows in enumerate(token_suffix.float()):  # [S, W]
        ids = torch.cdist(rows, weight).argmin(dim=-1)  # [S]
        if not torch.allclose(weight[ids], rows, rtol=0, atol=1e-6):
            raise ValueError(
                f"token_suffix of class {i} is not made of rows of the token embedding; "
                "pass the class texts explicitly"
            )
        ids = ids.tolist()
        if eot not in ids:
            raise ValueError(f"no end-of-text token in token_suffix of class {i}")
        texts.append(_tidy_decoded(tokenizer.decode(ids[: ids.index(eot)])))
    return texts


@dataclass
class AuthorsCheckpoint:
    """What :func:`load_authors_checkpoint` found and built."""

    model: DFERCLIP
    clip_model_name: str | None
    clip_config: dict[str, Any]
    class_texts: list[str]
    texts_recovered: bool
    epoch: int | None = None
    best_acc: float | None = None
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)
    skipped_objects: list[str] = field(default_factory=list)


def _holds_placeholder(obj: Any, depth: int = 0) -> bool:
    if isinstance(obj, Inert):
        return True
    if depth > 20:
        return False
    if isinstance(obj, Mapping):
        return any(_holds_placeholder(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_holds_placeholder(v, depth + 1) for v in obj)
    return False


def _as_float(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)):
        return float(value)
    return None


def load_authors_checkpoint(
    path: str | os.PathLike,
    class_texts: list[str] | None = None,
    *,
    clip_model_name: str | None = None,
    class_token_position: str = "end",
    tokenizer: Any = None,
    device: str | torch.device = "cpu",
    strict: bool = True,
    preferred_clip: str | None = None,
) -> AuthorsCheckpoint:
    """Build a :class:`DFERCLIP` from a checkpoint released by the DFER-CLIP authors.

    Args:
        path: the ``.pth`` file (``{'epoch', 'state_dict', 'best_acc', 'optimizer',
            'recorder'}``; a bare state dict is accepted too).
        class_texts: the texts the model was trained with, in label order. If None they
            are recovered from the prompt learner's buffers (:func:`recover_class_texts`);
            if given they must reproduce the checkpoint's buffers exactly.
        clip_model_name: open_clip architecture to build; default inferred from shapes
            (:func:`infer_clip_architecture`: ``ViT-B-32-quickgelu`` for the released files).
        class_token_position: not recorded in checkpoints; the authors' scripts use "end".
        tokenizer: open_clip tokenizer; default that of the architecture.
        device: where to build the model.
        strict: raise if, after conversion, the checkpoint lacks a model key or has extra.
        preferred_clip: an open_clip architecture used when ``clip_model_name`` is None
            and its tensor shapes are the checkpoint's (shapes cannot show head counts;
            a run's configured CLIP can).

    Returns:
        An :class:`AuthorsCheckpoint` whose ``model`` is in eval mode.
    """
    obj, skipped = read_torch_checkpoint(path, map_location="cpu")
    if skipped and isinstance(obj, Mapping):
        holders = [str(k) for k, v in obj.items() if _holds_placeholder(v)]
        logger.warning(
            "%s: the skipped objects sit in %s; a DFER-CLIP model needs only 'state_dict' "
            "(the authors' files pickle their training-curve 'recorder' object, unused here)",
            path,
            ", ".join(repr(h) for h in holders) or "no top-level entry",
        )
    if isinstance(obj, Mapping) and "state_dict" in obj:
        raw_state = obj["state_dict"]
        epoch = obj.get("epoch")
        best_acc = _as_float(obj.get("best_acc"))
    else:
        raw_state, epoch, best_acc = obj, None, None
    if not isinstance(raw_state, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw_state.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict of tensors")
    state, dropped = convert_authors_state_dict(raw_state)
    if "prompt_learner.ctx" not in state:
        raise ValueError(f"{str(path)!r} has no prompt_learner.ctx: not a DFER-CLIP checkpoint")

    # Architecture.
    inferred_name, clip_cfg = infer_clip_architecture(state)
    if clip_model_name is None and preferred_clip:
        register_model_configs()
        preferred_cfg = open_clip.get_model_config(preferred_clip)
        if preferred_cfg is not None and _shapes_only(preferred_cfg) == _shapes_only(clip_cfg):
            clip_model_name = preferred_clip
    if clip_model_name is None:
        clip_model_name = inferred_name
    if "text_encoder.token_embedding.weight" not in state:
        raise ValueError(
            f"{str(path)!r} has no clip_model_.token_embedding.weight: the prompts cannot be rebuilt "
            "without the token embedding the model was trained with"
        )
    if clip_model_name is not None:
        register_model_configs()
        named_cfg = open_clip.get_model_config(clip_model_name)
        if named_cfg is None:
            raise ValueError(f"unknown open_clip model {clip_model_name!r}")
        clip_cfg = named_cfg
        if tokenizer is None:
            tokenizer = open_clip.get_tokenizer(clip_model_name)
    else:
        logger.info("no known open_clip architecture matches; building from inferred config %s", clip_cfg)
    if tokenizer is None:
        tokenizer = default_tokenizer(int(clip_cfg["text_cfg"]["context_length"]))
    # Random init is fine: every tensor is overwritten from the checkpoint below.
    clip_model = build_clip_from_config(clip_cfg)

    # Load the CLIP tensors first, so the prompt buffers are built from the real embedding.
    clip_state = {}
    for key, value in state.items():
        if key.startswith("image_encoder."):
            clip_state["visual." + key[len("image_encoder.") :]] = value
        elif key.startswith("text_encoder."):
            clip_state[key[len("text_encoder.") :]] = value
    load_state(clip_model, clip_state, path, strict=False)  # missing keys: reported below

    # Options from shapes.
    ctx = state["prompt_learner.ctx"]
    class_specific = ctx.dim() == 3
    n_ctx = int(ctx.shape[1] if class_specific else ctx.shape[0])
    n_layers = _count_blocks(state, "temporal_net.temporal_transformer.layers.")
    if "temporal_net.cls_token" in state and n_layers == 0:
        raise NotImplementedError("a class-token temporal model with 0 layers is not supported")
    num_frames = int(state["temporal_net.pos_embedding"].shape[1]) - 1 if n_layers else 16

    texts_recovered = class_texts is None
    if class_texts is None:
        class_texts = recover_class_texts(
            state["prompt_learner.token_suffix"], clip_model.token_embedding.weight, tokenizer
        )
        logger.info("class texts recovered from the checkpoint: %s", class_texts)

    model = DFERCLIP(
        clip_model,
        class_texts,
        tokenizer=tokenizer,
        n_ctx=n_ctx,
        class_specific=class_specific,
        class_token_position=class_token_position,
        temporal_depth=n_layers,
        num_frames=num_frames,
        clip_model_name=clip_model_name,
    )
    for name in ("token_prefix", "token_suffix"):
        ours, theirs = getattr(model.prompt_learner, name), state.get(f"prompt_learner.{name}")
        if theirs is not None and (ours.shape != theirs.shape or not torch.equal(ours, theirs.to(ours.dtype))):
            try:
                found = recover_class_texts(
                    state["prompt_learner.token_suffix"], clip_model.token_embedding.weight, tokenizer
                )
            except ValueError as err:
                found = f"unreadable ({err})"
            raise ValueError(
                f"the class texts do not reproduce the checkpoint's prompt_learner.{name}: the model was "
                f"trained with other texts. Texts read from the checkpoint: {found}"
            )

    missing, unexpected = load_state(model, state, path, strict=strict)
    if missing or unexpected:
        logger.warning("loading %s into DFERCLIP: missing keys %s; unexpected keys %s", path,
                       missing or "none", unexpected or "none")
    if dropped:
        logger.info("dropped %d keys (clip_model_ duplicates and unused CLIP tensors)", len(dropped))

    model = model.to(device).eval()
    return AuthorsCheckpoint(
        model=model,
        clip_model_name=clip_model_name,
        clip_config=clip_cfg,
        class_texts=list(class_texts),
        texts_recovered=texts_recovered,
        epoch=int(epoch) if isinstance(epoch, int) else None,
        best_acc=best_acc,
        missing_keys=missing,
        unexpected_keys=unexpected,
        dropped_keys=dropped,
        skipped_objects=skipped,
    )
