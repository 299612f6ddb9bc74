"""CLIP backbones for dferbench, built with open_clip.

DFER-CLIP (Zhao & Patras, BMVC 2023) uses OpenAI's CLIP ViT-B/32, which open_clip names
``ViT-B-32-quickgelu`` with pretrained tag ``openai``. This module wraps
``open_clip.create_model`` so that

* ``pretrained`` is ``None`` (random init), an open_clip tag, or a local weights file,
  with a clear error when it is none of these (a typo must not silently give a random
  model);
* the core's random tiny architecture (``configs/*.json``) is registered with open_clip on
  import, and architectures and weights that plugins register
  (``dferbench_register_clip_models``, e.g. the synthetic benchmark's face-domain
  ``dferbench-tiny``) before a model is built, so tests and smoke runs never need
  downloaded weights.

Models are built in fp32 (the authors load CLIP on CPU, hence fp32 everywhere) and
returned in eval mode; a training loop switches modes itself.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

__all__ = [
    "CONFIG_DIR",
    "DFERBENCH_MODEL_CONFIGS",
    "register_model_configs",
    "create_clip",
    "unknown_model",
    "build_clip_from_config",
    "default_tokenizer",
    "clip_input_size",
]

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
"""Folder of the core's open_clip model configs (one JSON file per architecture)."""

DFERBENCH_MODEL_CONFIGS: tuple[str, ...] = ("dferbench-test-tiny",)
"""Architectures shipped in :data:`CONFIG_DIR` (file stem = open_clip model name): a
random tiny CLIP for tests and smoke runs."""


def _add_config(name: str, path: Path) -> bool:
    """Register ``path`` with open_clip as ``name``; False when it is already known
    with identical content. A name known with *different* content is an error rather
    than a silent override."""
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    known = open_clip.get_model_config(name)
    if known is not None:
        if known != cfg:
            raise RuntimeError(
                f"open_clip already has a different model config named {name!r}; refusing to override it with {path}"
            )
        return False
    if Path(path).stem != name:
        raise RuntimeError(f"model config {path} must be named {name}.json (open_clip names models by file stem)")
    open_clip.add_model_config(path)
    return True


def register_model_configs() -> list[str]:
    """Register the core's ``configs/*.json`` and every plugin-registered architecture
    with open_clip. Idempotent (repeated calls never grow open_clip's search path);
    returns the names newly registered by this call."""
    added = [p.stem for p in sorted(CONFIG_DIR.glob("*.json")) if _add_config(p.stem, p)]
    for name, reg in _plugin_clip_models().items():
        config = reg.extra.get("config")
        if config and _add_config(name, Path(config)):
            added.append(name)
    return added


for _path in sorted(CONFIG_DIR.glob("*.json")):  # the core's own: no plugin loading at import
    _add_config(_path.stem, _path)


def _plugin_clip_models() -> dict[str, Any]:
    from dferbench.plugin import manager

    return manager.clip_models()


def unknown_model(model_name: str) -> str | None:
    """Why ``model_name`` is not an open_clip architecture (with close names), or None.
    Registers the core's and plugins' architectures first."""
    register_model_configs()
    if open_clip.get_model_config(model_name) is not None:
        return None
    import difflib

    close = difflib.get_close_matches(model_name, open_clip.list_models(), n=4)
    return (f"unknown open_clip model {model_name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
            + " (open_clip.list_models() lists them all)")


def create_clip(
    model_name: str,
    pretrained: str | os.PathLike | None,
    *,
    device: str | torch.device = "cpu",
) -> tuple[open_clip.CLIP, Any]:
    """Build an open_clip CLIP model and its tokenizer.

    Args:
        model_name: an open_clip architecture name, e.g. ``"ViT-B-32-quickgelu"`` (the
            DFER-CLIP backbone) or one of :data:`DFERBENCH_MODEL_CONFIGS`.
        pretrained: ``None`` for random init; an open_clip tag such as ``"openai"``, read
            from the Hugging Face / open_clip cache when it is there (no network call),
            downloaded otherwise; a plugin-registered tag such as ``"dferbench-synthetic"``
            (the shipped checkpoint pre-trained on synthetic faces by
            ``dferbench_plugins.synthetic.pretrain``; ``dferbench-tiny`` only); or a local
            weights file in any format of :mod:`dferbench.models.weight_files` (open_clip
            checkpoints, OpenAI's TorchScript ``ViT-B-32.pt``), loaded strictly.
        device: where to put the model.

    Returns:
        ``(model, tokenizer)``: the fp32 model in eval mode and open_clip's tokenizer for
        that architecture (OpenAI BPE for CLIP models: SOT 49406, EOT 49407, 77 tokens).

    Raises:
        dferbench.models.weights.MissingWeights: the weights are not here and cannot be
            downloaded now (one line: where they were looked for, how to fetch them).
    """
    from dferbench.models.weights import download_weights, require_weights

    unknown = unknown_model(model_name)
    if unknown:
        raise ValueError(unknown)
    status = require_weights(model_name, pretrained)
    if status.source == "random":
        model = open_clip.create_model(model_name, pretrained=None, precision="fp32", device=device)
        logger.info("built CLIP %s with random weights on %s", model_name, device)
        return model.eval(), open_clip.get_tokenizer(model_name)
    path = status.path if status.path is not None else download_weights(status)
    return _create_from_file(model_name, path, device, quick_gelu=bool(status.tag.get("quick_gelu"))), \
        open_clip.get_tokenizer(model_name)


def _create_from_file(model_name: str, path: Path, device: str | torch.device, *, quick_gelu: bool) -> open_clip.CLIP:
    """The architecture with the weights of ``path`` (any stored dtype, loaded fp32).

    ``quick_gelu``: the weights were trained with QuickGELU (OpenAI's), so an architecture
    configured with GELU (``ViT-B-32``) gets QuickGELU, as OpenAI's ``clip.load`` builds it.
    """
    from dferbench.models.weight_files import load_clip_weights, read_clip_state_dict

    force = quick_gelu and not open_clip.get_model_config(model_name).get("quick_gelu", False)
    if force:
        logger.info("%s: the weights were trained with QuickGELU; building the model with QuickGELU", model_name)
    state, report = read_clip_state_dict(path)
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": the weights load next
    try:
        model = open_clip.create_model(model_name, pretrained=None, precision="fp32", device="cpu",
                                       force_quick_gelu=force)
    finally:
        logging.disable(logging.NOTSET)
    load_clip_weights(model, state, source=str(path), model_name=model_name)
    logger.info("built CLIP %s with weights %s (%s) on %s", model_name, path, report["format"], device)
    return model.to(device).eval()


def build_clip_from_config(
    cfg: dict[str, Any], *, device: str | torch.device | None = "cpu"
) -> open_clip.CLIP:
    """Build a randomly initialised fp32 CLIP from an open_clip config dict.

    ``cfg`` has the layout of open_clip's model JSON files: ``embed_dim``, ``vision_cfg``,
    ``text_cfg`` and optionally ``quick_gelu``. Returned in eval mode; ``device=None``
    leaves it where it was built (e.g. under a ``torch.device("meta")`` context).
    """
    cfg = dict(cfg)
    model = open_clip.CLIP(
        embed_dim=cfg.pop("embed_dim"),
        vision_cfg=dict(cfg.pop("vision_cfg")),
        text_cfg=dict(cfg.pop("text_cfg")),
        quick_gelu=cfg.pop("quick_gelu", False),
        **cfg,
    )
    if device is not None:
        model = model.to(device)
    return model.eval()


@functools.lru_cache(maxsize=4)
def default_tokenizer(context_length: int = 77) -> open_clip.tokenizer.SimpleTokenizer:
    """open_clip's OpenAI BPE tokenizer (shared instance: building one reads the BPE file)."""
    return open_clip.tokenizer.SimpleTokenizer(context_length=context_length)


def clip_input_size(model: nn.Module) -> int:
    """Side length in pixels of the square images ``model`` expects.

    Accepts a CLIP model (uses ``model.visual``) or a vision tower directly.
    """
    visual = getattr(model, "visual", model)
    size = getattr(visual, "image_size", None)
    if size is None:
        raise ValueError(f"{type(visual).__name__} has no image_size attribute")
    if isinstance(size, int):
        return size
    height, width = size
    if height != width:
        raise ValueError(f"non-square input size {height}x{width} is not supported")
    return int(height)
