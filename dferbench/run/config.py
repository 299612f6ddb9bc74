"""Run configuration: defaults, presets, TOML files and ``--set`` overrides, validated once.

A config is a nested dict with four sections:

- ``data``: frames per clip, resolution, input normalisation, augmentation, workers,
  plus the dataset plugin's own options (``root``...).
- ``model``: the model plugin's options (its registered defaults).
- ``train``: generic training settings (epochs, batch size).
- ``protocol``: folds, seeds and the checkpoint-selection policy.

Layers, later wins: core defaults and the plugins' option defaults -> the model's preset
for the dataset (or its ``default`` preset) -> ``--config FILE`` -> ``--set key=value``.
Only keys that exist in the defaults may be set, with a value of the default's type.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Mapping

from dferbench.errors import DferbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Config = dict[str, dict[str, Any]]

SELECTION_POLICIES = ("last_epoch", "best_on_test")

CORE_DEFAULTS: Config = {
    "data": {
        "num_frames": 16,  # DFER-CLIP: 16 segments, one frame each
        "image_size": 224,
        "normalize": "none",  # DFER-CLIP feeds [0, 1] pixels; "clip" = CLIP mean/std
        "augmentation": "auto",  # "auto" = the dataset's paper augmentation
        "workers": -1,  # DataLoader workers; -1 = auto (none on CPU; on CUDA the rank's CPUs less one, max 16)
        "pipeline": "auto",  # auto (cpu; gpu on CUDA with < 4 workers), cpu, gpu (decode+augment on the GPU), reference
        "prefetch": -1,  # batches finished for the device ahead of the step; -1 = auto (2 on CUDA, else 0), 0 = off
    },
    "model": {},
    "train": {
        "epochs": 50,
        "batch_size": 48,
        "eval_batch_size": 64,
        "device": "auto",
        "precision": "auto",  # bf16 autocast on CUDA (Ampere or later), else fp32; "fp32" forces fp32
        "compile": False,  # torch.compile the network for training
        "save_state": True,  # save the training state after every epoch: a killed unit resumes
        "keep_state": False,  # keep that state when the unit has finished
        "tensorboard": False,  # TensorBoard events in the unit's folder (pip install 'dferbench[tensorboard]')
    },
    "protocol": {
        "folds": [],  # empty = every fold of the dataset
        "seeds": [1],
        "selection": "last_epoch",  # "best_on_test" reproduces the paper's protocol
    },
}

# Keys that change where data lives or how much of the protocol runs, not the numbers
# of one unit: they stay out of the config hash and out of variant names.
NON_SEMANTIC_KEYS = {
    "data.root", "data.annotations", "data.workers", "data.pipeline", "data.prefetch", "train.device", "train.compile",
    "train.eval_batch_size", "train.save_state", "train.keep_state", "train.tensorboard", "protocol.folds",
    "protocol.seeds",
}


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise DferbenchError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DferbenchError(f"config file {path} is not valid TOML: {exc}") from None


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list"}.get(type(value), type(value).__name__)


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Check ``value`` against the default's type; accept ints for floats."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise DferbenchError(
            f"{source}: {key} must be {_type_name(default)} (default {default!r}), got {value!r}"
        )
    return value


def merge(base: Config, layer: Mapping[str, Any], source: str) -> Config:
    """Return ``base`` updated by ``layer``; unknown sections or keys are errors."""
    out = copy.deepcopy(base)
    for section, values in layer.items():
        if section not in out:
            raise DferbenchError(f"{source}: unknown section [{section}]; valid sections: {', '.join(out)}")
        if not isinstance(values, Mapping):
            raise DferbenchError(f"{source}: [{section}] must be a table of key = value")
        for key, value in values.items():
            if key not in out[section]:
                valid = ", ".join(sorted(out[section])) or "(none)"
                raise DferbenchError(f"{source}: unknown key {section}.{key}; valid keys in [{section}]: {valid}")
            out[section][key] = _coerce(f"{section}.{key}", value, out[section][key], source)
    return out


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value``; the value is read as TOML, else as a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise DferbenchError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. --set train.epochs=5")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    for text in overrides:
        section, key, value = parse_override(text)
        config = merge(config, {section: {key: value}}, f"--set {text}")
    return config


PRECISIONS = ("auto", "bf16", "fp32")
PIPELINES = ("auto", "cpu", "gpu", "reference")


def validate(config: Config) -> None:
    if config["train"]["precision"] not in PRECISIONS:
        raise DferbenchError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {config['train']['precision']!r}")
    if config["data"]["pipeline"] not in PIPELINES:
        raise DferbenchError(f"data.pipeline must be one of {', '.join(PIPELINES)}, got {config['data']['pipeline']!r}")
    if config["data"]["prefetch"] < -1:
        raise DferbenchError(f"data.prefetch must be -1 (auto), 0 (off) or a number of batches, "
                             f"got {config['data']['prefetch']}")
    if config["train"]["tensorboard"]:
        from dferbench.run.training_log import require_tensorboard

        require_tensorboard()
    protocol = config["protocol"]
    if protocol["selection"] not in SELECTION_POLICIES:
        raise DferbenchError(
            f"protocol.selection must be one of {', '.join(SELECTION_POLICIES)}, got {protocol['selection']!r}"
        )
    if not protocol["seeds"] or not all(isinstance(s, int) for s in protocol["seeds"]):
        raise DferbenchError(f"protocol.seeds must be a non-empty list of integers, got {protocol['seeds']!r}")
    if not all(isinstance(f, int) for f in protocol["folds"]):
        raise DferbenchError(f"protocol.folds must be a list of integers, got {protocol['folds']!r}")


def flatten(config: Config) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in config.items() for k, v in values.items()}


def config_hash(config: Config) -> str:
    """A short hash of everything that can change a unit's numbers."""
    semantic = {k: v for k, v in flatten(config).items() if k not in NON_SEMANTIC_KEYS}
    blob = json.dumps(semantic, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def variant_label(config: Config, reference: Config) -> str:
    """``key=value`` pairs where ``config`` differs from the preset: what makes a run a
    variant of its model (a leaderboard row of its own). The protocol is not a variant:
    the selection policy has its own column, folds and seeds are aggregated."""
    ref = flatten(reference)
    diffs = [
        f"{k.split('.', 1)[1] if k.startswith('model.') else k}={v}"
        for k, v in sorted(flatten(config).items())
        if k not in NON_SEMANTIC_KEYS and not k.startswith("protocol.") and ref.get(k) != v
    ]
    return ",".join(diffs)
