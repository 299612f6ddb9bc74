"""Run configuration: defaults, presets, TOML files and ``--set`` overrides, validated once.

A config is a nested dict with four sections:

- ``data``: frames per clip, resolution, input normalisation, augmentation, workers,
  plus the dataset plugin's own options (``root``...).
- ``model``: the model plugin's options (its registered defaults).
- ``train``: generic training settings (epochs, batch size).
- ``protocol``: folds, seeds and the checkpoint-selection policy.

Layers, later wins: core defaults and the plugins' option defaults -> the model's preset
for the dataset (or its ``default`` preset) -> ``--config FILE`` -> ``--set key=value``.
Only keys that exist in the defaults may be set. Every setting is an :class:`Option`
(a plain default in a plugin's option dict means "a value of the default's type"); each
layer is checked against the options as it is merged and the result once more as a
whole, so a bad value stops a run in one line before any dataset is read or any
weights are loaded.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from dferbench.errors import DferbenchError, PluginError
from dferbench.files import read_toml as _read_toml
from dferbench.files import tomllib

Config = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Option:
    """One setting: its default and the values it accepts.

    The type is the default's (``int`` settings take integers, ``float`` ones any number,
    lists take lists). ``choices`` enumerates the valid values; ``ge``/``gt``/``le``/``lt``
    bound a number (``>=``, ``>``, ``<=``, ``<``); for a list, ``item`` is the option every
    element must satisfy and ``nonempty`` forbids ``[]``. ``check(value)`` is for what
    needs a look around (a registered text set, a file that exists): it returns None when
    the value is fine, else what is wrong, written to follow the key ("must be ...").

    ``execution`` marks settings that change how a run goes but not its numbers (workers,
    caches, saving a checkpoint): they never make a variant name. ``path`` marks settings
    whose value may name a file: variant names and the config hash see the file's base
    name and content hash, not where it lies.
    """

    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    item: Option | None = None
    nonempty: bool = False
    check: Callable[[Any], str | None] | None = None
    execution: bool = False
    path: bool = False

    def valid(self) -> str:
        """The valid values in words: "one of none, clip", "an integer >= 1"."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.item is not None:
            return f"{'a non-empty' if self.nonempty else 'a'} list of {_plural(self.item.valid())}"
        bounds = [f"{op} {bound:g}" if isinstance(bound, float) else f"{op} {bound}"
                  for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                  if bound is not None]
        return _type_name(self.default) + (" " + " and ".join(bounds) if bounds else "")

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (already of the right type), or None."""
        if self.choices is not None and value not in self.choices:
            return f"must be {self.valid()}, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if ((self.ge is not None and not value >= self.ge) or (self.gt is not None and not value > self.gt)
                    or (self.le is not None and not value <= self.le) or (self.lt is not None and not value < self.lt)):
                return f"must be {self.valid()}, got {value!r}"
        if isinstance(value, list):
            if self.nonempty and not value:
                return f"must be {self.valid()}, got []"
            if self.item is not None:
                for element in value:
                    if not _is_type(element, self.item.default) or self.item.problem(element):
                        return f"must be {self.valid()}, got {value!r}"
        return self.check(value) if self.check is not None else None


Spec = dict[str, dict[str, Option]]
"""The options of every section of a config: what :func:`merge` checks values against."""


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list"}.get(type(value), type(value).__name__)


def _plural(text: str) -> str:
    return re.sub(r"^(an integer|a number|a string)", lambda m: m.group(1).split()[1] + "s", text)


def _is_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        integral = isinstance(default, int)
        return isinstance(value, int if integral else (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


# ------------------------------------------------------------------------- checks


def check_device(value: str) -> str | None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return f"must be auto, cpu, cuda, cuda:N (a GPU index) or mps, got {value!r}"


def check_tensorboard(value: bool) -> str | None:
    """The tensorboard package, when TensorBoard logging is on."""
    import importlib.util

    if value and importlib.util.find_spec("tensorboard") is None:
        return ("is on, but the tensorboard package is not installed: pip install 'dferbench[tensorboard]', "
                "or drop --set train.tensorboard=true")
    return None


def check_file(value: str) -> str | None:
    """A file that exists."""
    if not value:
        return "must name a file, got ''"
    path = Path(value).expanduser()
    if path.is_dir():
        return f"must be a file, got the folder {value!r}"
    if not path.is_file():
        return f"must be a file that exists, got {value!r} (no such file)"
    return None


def check_text_set(value: str) -> str | None:
    """A registered text set (``dferbench list prompts``), or ``file:PATH`` of a descriptor
    file written by ``dferbench describe``."""
    if value.startswith("file:"):
        problem = check_file(value[5:])
        return f"must be file:PATH of a descriptor file that exists, got {value!r}" if problem else None
    from dferbench.plugin import manager as plugins

    names = sorted(plugins.prompts())
    if value in names:
        return None
    close = difflib.get_close_matches(value, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (f"must be a registered text set or file:PATH, got {value!r}.{hint} "
            f"Valid text sets: {', '.join(names) or '(none)'}")


# ------------------------------------------------------------------------- core options

SELECTION_POLICIES = ("last_epoch", "best_on_test")
PRECISIONS = ("auto", "bf16", "fp32")
PIPELINES = ("auto", "cpu", "gpu", "reference")
NORMALIZATIONS = ("none", "clip")
AUGMENTATIONS = ("auto", "dfew", "ferv39k", "mafw", "none")
SEED_LIMIT = 2**32  # numpy's seeds are below 2**32

CORE_OPTIONS: Spec = {
    "data": {
        "num_frames": Option(16, "frames per clip (DFER-CLIP: 16 segments, one frame each)", ge=1),
        "image_size": Option(0, "side of the square frames the model reads, pixels; 0 = the model's input "
                             "size (its CLIP's), 224 for a model that does not say", ge=0),
        "normalize": Option("none", "DFER-CLIP feeds [0, 1] pixels; clip = CLIP mean/std", choices=NORMALIZATIONS),
        "augmentation": Option("auto", "training augmentation; auto = the dataset's paper augmentation",
                               choices=AUGMENTATIONS),
        "workers": Option(-1, "DataLoader workers; -1 = auto (none on CPU; on CUDA the rank's CPUs less one, "
                          "max 16)", ge=-1, execution=True),
        "pipeline": Option("auto", "auto (cpu; gpu on CUDA with < 4 workers), cpu, gpu (decode+augment on the "
                           "GPU), reference", choices=PIPELINES, execution=True),
        "prefetch": Option(-1, "batches finished for the device ahead of the step; -1 = auto (2 on CUDA, else "
                           "0), 0 = off", ge=-1, execution=True),
    },
    "model": {},
    "train": {
        "epochs": Option(50, "training epochs", ge=1),
        "batch_size": Option(48, "training clips per step", ge=1),
        "eval_batch_size": Option(64, "clips per evaluation step", ge=1, execution=True),
        "device": Option("auto", "auto, cpu, cuda, cuda:N or mps", check=check_device, execution=True),
        "precision": Option("auto", "auto = bf16 autocast on CUDA (Ampere or later), else fp32",
                            choices=PRECISIONS),
        "compile": Option(False, "torch.compile the network for training", execution=True),
        "save_state": Option(True, "save the training state after every epoch: a killed unit resumes",
                             execution=True),
        "keep_state": Option(False, "keep that state when the unit has finished", execution=True),
        "tensorboard": Option(False, "TensorBoard events in the unit's folder (pip install "
                              "'dferbench[tensorboard]')", check=check_tensorboard, execution=True),
    },
    "protocol": {
        "folds": Option([], "folds to run; empty = every fold of the dataset", item=Option(1, ge=1)),
        "seeds": Option([1], "seeds; one unit per (fold, seed)", item=Option(0, ge=0, lt=SEED_LIMIT),
                        nonempty=True),
        "selection": Option("last_epoch", "best_on_test reproduces the paper's protocol",
                            choices=SELECTION_POLICIES),
    },
}


def options_of(section: Mapping[str, Any]) -> dict[str, Option]:
    """A registered option dict as options: a plain value becomes ``Option(value)``."""
    return {k: v if isinstance(v, Option) else Option(v) for k, v in section.items()}


def option_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """The default values of an option dict (options or plain values): a config section."""
    return {k: copy.deepcopy(o.default if isinstance(o, Option) else o) for k, o in options.items()}


def defaults(spec: Mapping[str, Mapping[str, Any]]) -> Config:
    """The config of defaults of ``spec``."""
    return {s: option_defaults(section) for s, section in spec.items()}


CORE_DEFAULTS: Config = defaults(CORE_OPTIONS)


def extend(spec: Spec, section: str, options: Mapping[str, Any], owner: str) -> Spec:
    """``spec`` with a plugin's options added to ``section``. A plain value for a key the
    core declares changes only its default (it must be valid for the core option)."""
    out = {s: dict(v) for s, v in spec.items()}
    for key, value in options.items():
        known = out[section].get(key)
        if known is not None and not isinstance(value, Option):
            if not _is_type(value, known.default) or known.problem(value):
                raise PluginError(f"{owner} sets {section}.{key} to {value!r}; it must be {known.valid()}")
            out[section][key] = replace(known, default=value)
        else:
            out[section][key] = value if isinstance(value, Option) else Option(value)
    return out


# ------------------------------------------------------------------------- layers


def read_toml(path: str | Path) -> dict[str, Any]:
    return _read_toml(path, what="config file")


def _spec(config: Config, spec: Spec | None) -> Spec:
    """``spec`` (plain values made options), or for a config without one: the core options,
    plain ones for the rest."""
    if spec is not None:
        return {s: options_of(section) for s, section in spec.items()}
    return {s: {k: CORE_OPTIONS.get(s, {}).get(k) or Option(v) for k, v in values.items()}
            for s, values in config.items()}


def check_value(key: str, value: Any, option: Option, source: str) -> Any:
    """``value`` checked against ``option`` (ints accepted for floats); raise one line if bad."""
    if not _is_type(value, option.default):
        raise DferbenchError(f"{source}: {key} must be {option.valid()} (default {option.default!r}), "
                             f"got {value!r}")
    if isinstance(option.default, float):
        value = float(value)
    problem = option.problem(value)
    if problem:
        raise DferbenchError(f"{source}: {key} {problem}")
    return value


def merge(base: Config, layer: Mapping[str, Any], source: str, spec: Spec | None = None) -> Config:
    """Return ``base`` updated by ``layer``; unknown sections or keys and bad values are errors."""
    spec = _spec(base, spec)
    out = copy.deepcopy(base)
    for section, values in layer.items():
        if section not in out:
            raise DferbenchError(f"{source}: unknown section [{section}]; valid sections: {', '.join(out)}")
        if not isinstance(values, Mapping):
            raise DferbenchError(f"{source}: [{section}] must be a table of key = value")
        for key, value in values.items():
            if key not in out[section]:
                valid = ", ".join(sorted(out[section])) or "(none)"
                close = difflib.get_close_matches(key, out[section], n=1)
                hint = f" (did you mean {section}.{close[0]}?)" if close else ""
                raise DferbenchError(f"{source}: unknown key {section}.{key}{hint}; valid keys in [{section}]: {valid}")
            out[section][key] = check_value(f"{section}.{key}", value, spec[section][key], source)
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


def apply_overrides(config: Config, overrides: list[str], spec: Spec | None = None) -> Config:
    for text in overrides:
        section, key, value = parse_override(text)
        config = merge(config, {section: {key: value}}, f"--set {text}", spec)
    return config


def validate(config: Config, spec: Spec | None = None) -> None:
    """Check every value of ``config``, defaults included (a required file left empty)."""
    spec = _spec(config, spec)
    for section, values in config.items():
        for key, value in values.items():
            option = spec[section][key]
            try:
                check_value(f"{section}.{key}", value, option, "settings")
            except DferbenchError as exc:
                what = f"; {section}.{key} is {option.help} (--set {section}.{key}=VALUE)" if option.help else ""
                raise DferbenchError(str(exc).removeprefix("settings: ") + what) from None


# ------------------------------------------------------------------------- identity

# Keys that change where data lives or how much of the protocol runs, not the numbers
# of one unit: they stay out of the config hash and out of variant names. Execution
# options declared later are hashed at their default instead (see identity()), so the
# hashes of results written before they were declared stay valid.
NON_SEMANTIC_KEYS = {
    "data.root", "data.annotations", "data.workers", "data.pipeline", "data.prefetch", "train.device", "train.compile",
    "train.eval_batch_size", "train.save_state", "train.keep_state", "train.tensorboard", "protocol.folds",
    "protocol.seeds",
}


def flatten(config: Config) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in config.items() for k, v in values.items()}


@lru_cache(maxsize=64)
def _content_hash(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:8]


def file_identity(value: Any) -> Any:
    """A value naming a file (``PATH`` or ``file:PATH``) as ``name#hash``: its base name and
    8 hex digits of its content's SHA-256. Other values are returned unchanged."""
    if not isinstance(value, str) or not value:
        return value
    prefix, name = ("file:", value[5:]) if value.startswith("file:") else ("", value)
    path = Path(name).expanduser()
    try:
        if not path.is_file():
            return value
        stat = path.stat()
        return f"{prefix}{path.name}#{_content_hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}"
    except OSError:
        return value


def identity(config: Config, spec: Spec | None = None) -> dict[str, Any]:
    """The settings that can change a unit's numbers, as hashed and compared: without the
    non-semantic keys, execution options at their default, files by name and content."""
    spec = _spec(config, spec)
    out = {}
    for section, values in config.items():
        for key, value in values.items():
            dotted, option = f"{section}.{key}", spec[section].get(key) or Option(value)
            if dotted in NON_SEMANTIC_KEYS:
                continue
            out[dotted] = option.default if option.execution else file_identity(value) if option.path else value
    return out


def switched_on(config: Config, previous: Mapping[str, Any], spec: Spec | None = None) -> list[str]:
    """The true/false execution settings ``config`` turns on that ``previous`` (the config a
    finished result was made with) had off: what a skipped unit would not do, such as
    saving a checkpoint."""
    spec = _spec(config, spec)
    found = []
    for section, values in config.items():
        for key, value in values.items():
            option = spec[section].get(key)
            if option is not None and option.execution and value is True \
                    and previous.get(section, {}).get(key, option.default) is not True:
                found.append(f"{section}.{key}")
    return found


def config_hash(config: Config, spec: Spec | None = None) -> str:
    """A short hash of everything that can change a unit's numbers."""
    blob = json.dumps(identity(config, spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def variant_label(config: Config, reference: Config, spec: Spec | None = None) -> str:
    """``key=value`` pairs where ``config`` differs from the preset: what makes a run a
    variant of its model (a leaderboard row of its own). Execution settings and the
    protocol are not variants: the selection policy has its own column, folds and seeds
    are aggregated."""
    ref = identity(reference, spec)  # execution settings sit at their default on both sides
    diffs = [
        f"{k.split('.', 1)[1] if k.startswith('model.') else k}={v}"
        for k, v in sorted(identity(config, spec).items())
        if not k.startswith("protocol.") and ref.get(k) != v
    ]
    return ",".join(diffs)
