"""DFER-CLIP checkpoints: dferbench's own format here, the authors' in :mod:`.authors`.

dferbench's own format is a ``.safetensors`` file of the model's state dict plus a JSON
sidecar (same stem, ``.json``) with the model options, the CLIP architecture and free
metadata. The authors' release format (``.pth``) is read by
:func:`~dferbench_plugins.dferclip.authors.load_authors_checkpoint`, re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import safetensors.torch
import torch

from dferbench import build_clip_from_config, default_tokenizer, read_torch_checkpoint, replacing
from dferbench_plugins.dferclip.architecture import (
    KNOWN_OPENAI_ARCHITECTURES,
    describe_clip_architecture,
    infer_clip_architecture,
)
from dferbench_plugins.dferclip.authors import (
    AuthorsCheckpoint,
    convert_authors_state_dict,
    load_authors_checkpoint,
    recover_class_texts,
)
from dferbench_plugins.dferclip.network import DFERCLIP

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KNOWN_OPENAI_ARCHITECTURES",
    "AuthorsCheckpoint",
    "read_torch_checkpoint",
    "convert_authors_state_dict",
    "infer_clip_architecture",
    "describe_clip_architecture",
    "recover_class_texts",
    "load_authors_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "sidecar_path",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "dferbench.dferclip"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------
# dferbench's own format
# --------------------------------------------------------------------------------------


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a weights file: same folder and stem, ``.json``."""
    return Path(path).with_suffix(".json")


def _atomic_write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(obj: Any) -> Any:
    """JSON fallback for sidecar metadata: paths, numpy values, sets; else repr (logged)."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if hasattr(obj, "tolist"):  # numpy arrays/scalars, tensors
        return obj.tolist()
    logger.warning("checkpoint metadata: %s is not JSON; stored as its repr", type(obj).__name__)
    return repr(obj)


def save_checkpoint(
    model: DFERCLIP, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
) -> tuple[Path, Path]:
    """Save ``model`` as ``path`` (safetensors) + :func:`sidecar_path` (JSON).

    The sidecar holds the format tag, :meth:`DFERCLIP.options`, the CLIP architecture
    (:func:`describe_clip_architecture`) and ``meta`` (JSON; paths, numpy values and sets
    are converted, anything else is stored as its ``repr`` with a warning, so a finished
    training run never fails at this last step).
    Returns ``(weights_path, sidecar_path)``.
    """
    path = Path(path)
    if path.suffix == ".json":
        raise ValueError("the weights path must not end in .json (that name is the sidecar's)")
    sidecar = sidecar_path(path)
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "weights": path.name,
        "options": model.options(),
        "clip_config": describe_clip_architecture(model),
        "meta": dict(meta or {}),
    }
    text = json.dumps(info, indent=2, sort_keys=True, default=_json_default)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
    with replacing(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
    _atomic_write_text(sidecar, text + "\n")
    return path, sidecar


def load_checkpoint(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    tokenizer: Any = None,
) -> tuple[DFERCLIP, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns ``(model, sidecar)``: the model in eval mode, and the sidecar dict
    (``options``, ``clip_config``, ``meta``, ...).
    """
    path = Path(path)
    sidecar = sidecar_path(path)
    for p in (path, sidecar):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {str(p)!r}")
    info = json.loads(sidecar.read_text(encoding="utf-8"))
    if info.get("format") != FORMAT_NAME:
        raise ValueError(f"{str(sidecar)!r} is not a {FORMAT_NAME} sidecar (format={info.get('format')!r})")
    if int(info.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{str(sidecar)!r} has format version {info['format_version']}, newer than {FORMAT_VERSION}")
    options = dict(info["options"])
    cfg = info["clip_config"]
    clip_model = build_clip_from_config(cfg)
    if tokenizer is None:
        tokenizer = default_tokenizer(int(cfg["text_cfg"]["context_length"]))
    class_texts = options.pop("class_texts")
    model = DFERCLIP(clip_model, class_texts, tokenizer=tokenizer, **options)
    state = safetensors.torch.load_file(str(path), device="cpu")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), info
