"""Reading torch checkpoint files without running the code pickled inside them.

``torch.load(weights_only=True)`` first; if the file holds pickled objects of classes it
refuses (for example the DFER-CLIP authors' ``__main__.RecorderMeter``), a restricted
unpickler that only rebuilds tensors and plain containers and turns every other pickled
class or function into an inert placeholder, never importing its module, never calling it.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import re
import types
from pathlib import Path
from typing import Any

import torch

__all__ = ["read_torch_checkpoint", "Inert"]

logger = logging.getLogger(__name__)


class Inert:
    """Stand-in for a pickled class or function that was not trusted.

    Accepts any construction arguments and state and discards them; supports the
    container protocol pickle uses (append/extend/setitem) as no-ops.
    """

    skipped_global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<skipped {self.skipped_global}>"


def _safe_globals() -> dict[tuple[str, str], Any]:
    """The only globals the restricted unpickler resolves: tensor rebuilders, containers."""
    import torch._utils as tu

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch._utils", "_rebuild_tensor"): tu._rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): tu._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): tu._rebuild_parameter,
    }
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            allowed[("torch", name)] = value
    return allowed


def _restricted_pickle_module(skipped: list[str]) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose Unpickler trusts only safe globals.

    torch wraps ``Unpickler`` to resolve its storage types itself and defers every other
    ``find_class`` to ours: allowed names come from a fixed table (no import happens),
    anything else becomes a fresh :class:`Inert` subclass and is recorded in ``skipped``.
    """
    allowed = _safe_globals()
    placeholders: dict[str, type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) in allowed:
                return allowed[(module, name)]
            full = f"{module}.{name}"
            if full not in placeholders:
                placeholders[full] = type(f"Skipped[{full}]", (Inert,), {"skipped_global": full})
                skipped.append(full)
            return placeholders[full]

    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()

    module = types.ModuleType("dferbench_restricted_pickle")
    module.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = load  # type: ignore[attr-defined]
    return module


def _weights_only_reason(err: Exception) -> str:
    """The useful part of torch's weights_only refusal (it is long and has ANSI codes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it pickles {found.group(1)}, which weights_only does not allow"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def read_torch_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[Any, list[str]]:
    """Read a ``torch.save`` file without executing code from it.

    Tries ``torch.load(weights_only=True)``; if torch refuses the file's pickled globals,
    reads it again with a restricted unpickler (see :func:`_restricted_pickle_module`).

    Returns:
        ``(obj, skipped)`` where ``skipped`` lists the ``module.name`` of every pickled
        class/function that was replaced by an inert placeholder (empty when the
        ``weights_only`` load succeeded).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {str(path)!r}")
    try:  # an open file, not the path: torch.load reads any *.safetensors path as safetensors
        with path.open("rb") as f:
            return torch.load(f, map_location=map_location, weights_only=True), []
    except pickle.UnpicklingError as err:
        reason = _weights_only_reason(err)
        logger.info("weights_only load of %s refused (%s); retrying with the restricted unpickler", path, reason)

    skipped: list[str] = []
    try:
        with path.open("rb") as f:
            obj = torch.load(f, map_location=map_location, pickle_module=_restricted_pickle_module(skipped),
                             weights_only=False)
    except Exception as err:
        raise RuntimeError(
            f"cannot read {str(path)!r} safely: torch.load(weights_only=True) refused it ({reason}) "
            f"and the restricted unpickler (tensors and containers only) failed too: "
            f"{type(err).__name__}: {err}"
        ) from err
    if skipped:
        logger.warning(
            "%s pickles Python objects that are not tensors or containers; they were NOT "
            "imported or executed but replaced by inert placeholders: %s. Only tensors and "
            "plain containers were read.",
            path,
            ", ".join(skipped),
        )
    return obj, skipped
