"""CLIP weights files in the formats users hold, read without running code, loaded strictly.

Formats (told apart by content, not by suffix):

* safetensors (open_clip's ``open_clip_model.safetensors`` on the Hugging Face hub, any
  ``.safetensors``);
* ``torch.save`` files (``.bin``, ``.pt``, ``.pth``): a state dict, or a dict holding
  one under ``state_dict`` (open_clip training checkpoints, FaRL) or ``model``; keys may
  carry DataParallel/DDP's ``module.`` prefix;
* TorchScript archives: OpenAI's original ``ViT-B-32.pt`` (fp16), read by
  :func:`dferbench.models.torch_checkpoint.read_torchscript_tensors`.

OpenAI-format keys map 1:1 onto open_clip's ``CLIP``; the OpenAI archive's extra
``input_resolution``/``context_length``/``vocab_size`` and traced ``attn_mask`` tensors are
dropped. Loading is strict: a file that does not fit the architecture is an error that
names the first keys and shapes that differ.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dferbench.errors import DferbenchError

__all__ = ["read_clip_state_dict", "load_clip_weights"]

OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
"""Integer tensors at the top of OpenAI's TorchScript CLIP that are not weights."""


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length, then ``{``."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < os.path.getsize(path)


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a ``torch.load`` result, ``module.`` prefixes removed."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        top = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, dict) else type(obj).__name__
        raise DferbenchError(f"{path} holds no state dict of tensors (top level: {top}); expected CLIP weights "
                             "(a state dict, {'state_dict': ...}, safetensors or OpenAI's TorchScript file)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_clip_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read CLIP weights from ``path`` in any supported format, executing nothing from it.

    Returns ``(state, report)``: tensors by key (dtype as stored, e.g. fp16 for OpenAI's
    archive) and ``{"format": "safetensors" | "torch" | "torchscript", "skipped_objects":
    [...]}`` (pickled non-tensor objects that were replaced by placeholders). Raises
    :class:`DferbenchError` with one line when the file cannot be read safely or holds no
    tensors.
    """
    from dferbench.models.torch_checkpoint import is_torchscript_archive, read_torch_checkpoint, read_torchscript_tensors

    path = Path(path)
    if not path.is_file():
        raise DferbenchError(f"weights file not found: {path} (resolved: {path.resolve()})")
    how = "torch.load(weights_only=True), then a tensors-only unpickler"
    try:
        if _is_safetensors(path):
            import safetensors.torch

            how = "safetensors"
            return _unwrap(safetensors.torch.load_file(str(path)), path), {"format": "safetensors", "skipped_objects": []}
        if is_torchscript_archive(path):
            how = "its data.pkl with a tensors-only unpickler (TorchScript archive)"
            tensors, skipped = read_torchscript_tensors(path)
            return _unwrap(tensors, path), {"format": "torchscript", "skipped_objects": skipped}
        obj, skipped = read_torch_checkpoint(path, map_location="cpu")
    except DferbenchError:
        raise
    except Exception as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise DferbenchError(f"cannot read {path} safely as CLIP weights: read with {how}, which failed ({reason}); "
                             "if it was downloaded, it may be incomplete: fetch it again") from None
    return _unwrap(obj, path), {"format": "torch", "skipped_objects": skipped}


def _examples(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_clip_weights(model: nn.Module, state: dict[str, torch.Tensor], *, source: str,
                      model_name: str) -> dict[str, Any]:
    """Copy ``state`` into ``model`` (cast to the model's dtypes), strictly.

    Drops the OpenAI archive's non-weight tensors and tensors the model keeps out of its
    state dict (a traced ``attn_mask``), fills a missing ``logit_bias`` with zeros as
    open_clip does, and reshapes ``logit_scale`` between 0-d and 1-d. Returns
    ``{"dropped_keys": [...]}``; raises :class:`DferbenchError` naming ``source`` and the
    first differing keys when the weights do not fit ``model_name``.
    """
    expected = model.state_dict()
    state = dict(state)
    dropped = sorted(k for k in state if k not in expected and (k in OPENAI_EXTRA_KEYS or k.endswith("attn_mask")))
    for key in dropped:
        del state[key]
    if "logit_bias" in expected and "logit_bias" not in state:
        state["logit_bias"] = torch.zeros_like(expected["logit_bias"])
    for key in ("logit_scale", "logit_bias"):
        if key in state and key in expected and state[key].numel() == expected[key].numel():
            state[key] = state[key].reshape(expected[key].shape)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = ([f"{len(missing)} weights missing (e.g. {_examples(missing)})"] if missing else []) + \
                ([f"{len(unexpected)} unexpected (e.g. {_examples(unexpected)})"] if unexpected else []) + \
                ([f"{len(shapes)} of other shapes (file vs model: {_examples(shapes, 2)})"] if shapes else [])
        authors = any(k.startswith(("clip_model_.", "prompt_learner.")) for k in state)
        hint = ("it is a trained DFER-CLIP checkpoint: evaluate it with `dferbench evaluate --checkpoint FILE`"
                if authors else "are they the weights of another architecture? Set --set model.clip_model=NAME")
        raise DferbenchError(f"{source} does not fit open_clip {model_name!r}: {'; '.join(parts)}; {hint}")
    model.load_state_dict(state, strict=True)
    return {"dropped_keys": dropped}

