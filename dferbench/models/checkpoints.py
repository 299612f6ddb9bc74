"""dferbench's checkpoint format: the weights as safetensors, and a JSON sidecar saying
what ``predict`` and ``evaluate`` need to use them, for any model.

    fold1-seed1.checkpoint.safetensors   the network's state dict (tensors only, no pickle)
    fold1-seed1.checkpoint.json          the sidecar: a :class:`CheckpointInfo`

The sidecar names the model and the plugin that registered it, the classes in logit
order and the texts the network scores, how clips are sampled (frames, image size,
normalisation), the dataset, fold and seed it was trained on with the effective config
and its hash, and ``rebuild``: what the model's plugin needs to build the network again
before the weights go in (the model's registered ``rebuild`` capability reads it).

Reading never unpickles anything, and every problem is one :class:`CheckpointError`
line naming the file: a file of no known kind, an empty or truncated one, a missing or
invalid sidecar, a tensor whose shape the model does not expect, missing or unexpected
keys, NaN or infinite weights.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from dferbench.data.transforms import NORMALIZATIONS
from dferbench.errors import DferbenchError
from dferbench.files import replacing

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointInfo",
    "LoadedNetwork",
    "sidecar_path",
    "file_kind",
    "save_checkpoint",
    "read_sidecar",
    "read_info",
    "read_weights",
    "load_state",
]

FORMAT = "dferbench.checkpoint"
FORMAT_VERSION = 1
SHOWN_KEYS = 3  # keys named in a message; the rest are counted


class CheckpointError(DferbenchError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class CheckpointInfo:
    """The sidecar of a dferbench checkpoint: what the weights are and how to use them.

    ``classes``: class names in logit order; ``class_texts``: what the network scores
    for each class (its prompts; the class names for a classifier); ``text_set``: the
    registered text set they came from (``""`` when none). ``num_frames``,
    ``image_size`` (pixels, square) and ``normalize`` (``"none"`` or ``"clip"``) say how
    a clip is sampled and prepared, as evaluation does. ``rebuild``: the model's own
    description of its network (for DFER-CLIP, its options and CLIP architecture).
    ``dataset``, ``fold``, ``seed``, ``config`` and ``config_hash`` tell where it was
    trained; ``plugin`` and ``plugin_version`` who registered the model.
    """

    model: str
    classes: list[str]
    class_texts: list[str]
    num_frames: int
    image_size: int
    normalize: str
    rebuild: dict[str, Any] = field(default_factory=dict)
    text_set: str = ""
    plugin: str = ""
    plugin_version: str = ""
    dataset: str = ""
    fold: int | None = None
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    dferbench_version: str = ""

    def to_json(self) -> dict[str, Any]:
        """The sidecar's content: the format tag and version, then every field."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any, where: str | os.PathLike[str]) -> CheckpointInfo:
        """Check a parsed sidecar and build the info; :class:`CheckpointError` naming
        ``where`` and the first problem otherwise."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: the sidecar must be a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise CheckpointError(f"{where}: not a dferbench checkpoint sidecar (format {data.get('format')!r}, "
                                  f"expected {FORMAT!r})")
        version = data.get("format_version")
        if not _is_int(version) or version < 1:
            raise CheckpointError(f"{where}: format_version must be a positive integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(f"{where}: format version {version} is newer than this dferbench reads "
                                  f"({FORMAT_VERSION}); upgrade dferbench")
        problem = _field_problem(data)
        if problem:
            raise CheckpointError(f"{where}: {problem}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class LoadedNetwork:
    """What a model's ``load_checkpoint`` capability returns for a file of its own kind
    (not a dferbench checkpoint): the trained network and what it scores.

    ``network(video [B, T, 3, H, W]) -> logits [B, C]``; ``class_texts``: the C texts (or
    class names) it scores, in order; ``message``: one line saying what was loaded.
    ``classes``: the class names when the file records them (else the dataset named by
    the user names them); ``data``: the clip settings the file fixes (``num_frames``,
    ``image_size``, ``normalize``), over the dataset's preset.
    """

    network: nn.Module
    class_texts: list[str]
    message: str = ""
    classes: list[str] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_texts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def _field_problem(data: Mapping[str, Any]) -> str:
    """The first thing wrong with a sidecar's fields, or ``""``."""
    for key in ("model", "classes", "class_texts", "num_frames", "image_size", "normalize"):
        if key not in data:
            return f"the sidecar has no {key!r}"
    if not isinstance(data["model"], str) or not data["model"]:
        return f"model must be a model name, got {data['model']!r}"
    classes, texts = data["classes"], data["class_texts"]
    if not _is_texts(classes) or len(set(classes)) != len(classes):
        return f"classes must be a list of distinct class names, got {classes!r}"
    if not _is_texts(texts):
        return f"class_texts must be a list of non-empty strings, got {texts!r}"
    if len(texts) != len(classes):
        return (f"it lists {len(classes)} classes ({', '.join(classes)}) but {len(texts)} class texts: "
                "the network scores one text per class")
    for key in ("num_frames", "image_size"):
        if not _is_int(data[key]) or data[key] < 1:
            return f"{key} must be a positive integer, got {data[key]!r}"
    if data["normalize"] not in NORMALIZATIONS:
        return f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {data['normalize']!r}"
    for key, kind in (("rebuild", dict), ("config", dict), ("text_set", str), ("plugin", str),
                      ("plugin_version", str), ("dataset", str), ("config_hash", str), ("dferbench_version", str)):
        if key in data and not isinstance(data[key], kind):
            return f"{key} must be a JSON {'object' if kind is dict else 'string'}, got {data[key]!r}"
    for key in ("fold", "seed"):
        if data.get(key) is not None and not _is_int(data[key]):
            return f"{key} must be an integer or null, got {data[key]!r}"
    return ""


# --------------------------------------------------------------------------------------
# Files


def sidecar_path(weights: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of a weights file: same folder and stem, ``.json``
    (``fold1-seed1.checkpoint.safetensors`` -> ``fold1-seed1.checkpoint.json``)."""
    return Path(weights).with_suffix(".json")


def file_kind(path: str | os.PathLike[str]) -> str:
    """What a checkpoint file holds, from its bytes (never its name): ``"safetensors"``,
    ``"torch"`` (a ``torch.save`` zip archive or an older pickle file). A safetensors
    header and a zip archive's directory are checked (a cut file is said to be truncated).

    Raises :class:`CheckpointError` for a missing, empty, truncated or unknown file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the copy or the save that made it "
                              "did not finish; copy or save it again")
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"checkpoint {path} is truncated or damaged: a torch zip archive whose "
                                  f"directory cannot be read ({exc}); copy it again") from None
        return "torch"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle protocol 2-5 opcode
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len >= size:
            raise CheckpointError(f"checkpoint {path} is truncated: its safetensors header alone should take "
                                  f"{header_len} bytes, the file has {size}; copy it again")
        _check_safetensors_header(path, header_len, size)
        return "safetensors"
    raise CheckpointError(f"{path} is not a checkpoint of a known kind (neither safetensors nor a torch.save "
                          "file); pass a .checkpoint.safetensors written by dferbench or a model's own .pth")


def _check_safetensors_header(path: Path, header_len: int, size: int) -> None:
    """The header is JSON and the file holds every byte its tensors need."""
    with path.open("rb") as f:
        f.seek(8)
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {path} is truncated or damaged: its safetensors header is not "
                              "valid JSON; copy it again") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path} is damaged: its safetensors header is not an object")
    ends = []
    for key, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if key != "__metadata__" and not (isinstance(offsets, list) and len(offsets) == 2
                                          and all(_is_int(o) for o in offsets)):
            raise CheckpointError(f"checkpoint {path} is damaged: its safetensors header has no valid offsets for "
                                  f"{key!r}")
        if key != "__metadata__":
            ends.append(offsets[1])
    needed = 8 + header_len + max(ends, default=0)
    if needed > size:
        raise CheckpointError(f"checkpoint {path} is truncated: its tensors need {needed} bytes, the file has "
                              f"{size}; copy it again")


def read_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU), checked to be complete."""
    import safetensors.torch

    path = Path(path)
    if file_kind(path) != "safetensors":
        raise CheckpointError(f"{path} is a torch.save file, not the safetensors weights of a dferbench checkpoint")
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except Exception as exc:  # the Rust reader's errors have no useful type
        raise CheckpointError(f"checkpoint {path} is damaged: {' '.join(str(exc).split())}") from None


def read_sidecar(path: str | os.PathLike[str]) -> Any:
    """The parsed JSON of a weights file's sidecar; :class:`CheckpointError` when it is
    missing or not JSON."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise CheckpointError(f"checkpoint {path} has no sidecar {sidecar.name} next to it (a dferbench checkpoint "
                              "is two files: .safetensors and .json); copy both")
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{sidecar}: the sidecar is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{sidecar}: the sidecar is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg})") from None


def read_info(path: str | os.PathLike[str]) -> CheckpointInfo | None:
    """The :class:`CheckpointInfo` of a safetensors weights file, or None when its sidecar
    is of another format (a model's own, such as the earlier ``dferbench.dferclip``)."""
    data = read_sidecar(path)
    if isinstance(data, dict) and isinstance(data.get("format"), str) and data["format"] != FORMAT:
        return None
    return CheckpointInfo.from_json(data, sidecar_path(path))


def _json_default(obj: Any) -> Any:
    """JSON for what configs may hold besides plain data: paths, sets, numpy values."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return repr(obj)


def save_checkpoint(path: str | os.PathLike[str], network: nn.Module, info: CheckpointInfo) -> tuple[Path, Path]:
    """Write ``network``'s state dict to ``path`` (safetensors) and ``info`` to its
    :func:`sidecar_path`, each atomically, the sidecar last (a sidecar on disk means the
    weights are complete). Tensors that share memory are stored as copies.
    Returns ``(weights_path, sidecar_path)``."""
    import safetensors.torch

    path = Path(path)
    if path.suffix == ".json":
        raise ValueError("the weights path must not end in .json (that name is the sidecar's)")
    CheckpointInfo.from_json(json.loads(json.dumps(info.to_json(), default=_json_default)), "the checkpoint info")
    seen: set[int] = set()
    tensors = {}
    for key, value in network.state_dict().items():
        value = value.detach().cpu().contiguous()
        if value.numel() and value.data_ptr() in seen:
            value = value.clone()
        seen.add(value.data_ptr())
        tensors[key] = value
    sidecar = sidecar_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={"format": FORMAT,
                                                                 "format_version": str(FORMAT_VERSION)})
    text = json.dumps(info.to_json(), indent=1, default=_json_default) + "\n"
    with replacing(sidecar) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path, sidecar


# --------------------------------------------------------------------------------------
# Weights into a network


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def _keys(n: int) -> str:
    return f"{n} key" if n == 1 else f"{n} keys"


def load_state(network: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str], *,
               strict: bool = True) -> tuple[list[str], list[str]]:
    """Load ``state`` into ``network`` after checking it, naming ``path`` in each error:
    a tensor whose shape the network does not expect, keys it needs that are missing and
    keys it does not have (with ``strict``), NaN or infinite values.

    Returns ``(missing_keys, unexpected_keys)`` (empty with ``strict``)."""
    expected = network.state_dict()
    wrong = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        more = f" (and {_keys(len(wrong) - 1)} more of other shapes)" if len(wrong) > 1 else ""
        raise CheckpointError(f"{path}: key {k!r} has shape {_shape(state[k])}, the model expects "
                              f"{_shape(expected[k])}{more}: the weights are of another architecture")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{_keys(len(missing))} the model needs missing ({_some(missing)})")
        if unexpected:
            parts.append(f"{_keys(len(unexpected))} the model does not have ({_some(unexpected)})")
        raise CheckpointError(f"{path}: " + "; ".join(parts) + ": the weights are of another model or version")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensors hold NaN or infinite values ({_some(bad)}): the "
                              "training diverged or the file is damaged")
    network.load_state_dict(state, strict=strict)
    return missing, unexpected
