"""Reading torch checkpoint files without running the code pickled inside them.

``torch.load(weights_only=True)`` first; if the file holds pickled objects of classes it
refuses (for example the DFER-CLIP authors' ``__main__.RecorderMeter``), a restricted
unpickler that only rebuilds tensors and plain containers and turns every other pickled
class or function into an inert placeholder, never importing its module, never calling it.

TorchScript archives (OpenAI's original ``ViT-B-32.pt``) are read the same way: their
``data.pkl`` is unpickled with module objects as plain attribute records and tensors
read from the archive's ``data/`` entries; the archive's code is never compiled or run
(``torch.jit.load`` would do both).
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import re
import types
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["read_torch_checkpoint", "read_torchscript_tensors", "is_torchscript_archive", "Inert"]

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


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript zip archive (``torch.jit.save``): torch's own test,
    a ``constants.pkl`` record next to ``data.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.count("/") == 1 and name.endswith("/constants.pkl") for name in archive.namelist())


class _ScriptObject:
    """A pickled TorchScript module (``__torch__.*``): keeps its attributes, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_ScriptObject":
        obj = object.__new__(cls)
        obj.attributes = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        self.attributes = state if isinstance(state, dict) else {}


def _script_tensors(obj: _ScriptObject, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """``out[dotted name] = tensor`` for every tensor attribute of ``obj`` and its submodules."""
    for name, value in obj.attributes.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            _script_tensors(value, f"{prefix}{name}.", out)


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}
"""The legacy storage classes a TorchScript ``data.pkl`` names, by the dtype they hold."""


def read_torchscript_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a TorchScript archive's module tree, keyed like its ``state_dict()``.

    Only ``<root>/data.pkl`` and the tensor records it names are read: module objects
    become attribute records, tensors are rebuilt from the raw bytes, every other pickled
    global becomes an inert placeholder (listed in the second return value). Besides the
    parameters and buffers the result can hold tensor attributes a traced module kept
    (OpenAI's ``input_resolution``, open_clip's ``attn_mask``); callers drop what their
    model does not have.
    """
    path = Path(path)
    skipped: list[str] = []
    with zipfile.ZipFile(path) as archive:
        roots = [n[: -len("data.pkl")] for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(roots) != 1:
            raise RuntimeError(f"{str(path)!r} is not a TorchScript archive: expected one <root>/data.pkl record")
        root = roots[0]
        if f"{root}byteorder" in archive.namelist() and archive.read(f"{root}byteorder").strip() not in (b"", b"little"):
            raise RuntimeError(f"{str(path)!r} stores big-endian tensors, which this reader does not convert")
        allowed = _safe_globals()
        storage_dtypes = _STORAGE_DTYPES
        storages: dict[str, torch.storage.TypedStorage] = {}

        class ScriptUnpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if (module, name) in allowed:
                    return allowed[(module, name)]
                if module == "torch" and name in storage_dtypes:
                    return storage_dtypes[name]
                if module == "__torch__" or module.startswith("__torch__."):
                    return _ScriptObject
                if module == "torch.jit._pickle":  # list builders of old archives; restore_type_tag keeps the value
                    return (lambda value, *_: value) if name == "restore_type_tag" else list
                full = f"{module}.{name}"
                skipped.append(full)
                return type(f"Skipped[{full}]", (Inert,), {"skipped_global": full})

            def persistent_load(self, pid: Any) -> Any:
                kind, dtype, key, _location, _numel = pid
                if kind != "storage" or not isinstance(dtype, torch.dtype):
                    raise RuntimeError(f"unexpected persistent record {pid!r}")
                if key not in storages:
                    raw = bytearray(archive.read(f"{root}data/{key}"))
                    untyped = torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)
                    storages[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
                return storages[key]

        with archive.open(f"{root}data.pkl") as data:
            top = ScriptUnpickler(data).load()
    if not isinstance(top, _ScriptObject):
        raise RuntimeError(f"{str(path)!r}: the archive's data.pkl holds {type(top).__name__}, not a TorchScript module")
    tensors: dict[str, torch.Tensor] = {}
    _script_tensors(top, "", tensors)
    return tensors, skipped
