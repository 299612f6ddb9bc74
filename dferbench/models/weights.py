"""Where a CLIP model's pretrained weights come from, found without touching the network.

``model.pretrained`` is ``""``/None (random weights), a local file (any format
:mod:`dferbench.models.weight_files` reads), a tag a plugin registered with its file
(``dferbench-synthetic``), or an open_clip tag (``openai``). open_clip resolves a tag to a
file on the Hugging Face hub (``timm/vit_base_patch32_clip_224.openai``, file
``open_clip_model.safetensors``) kept in the Hugging Face cache (``$HF_HUB_CACHE``, else
``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), or to a URL downloaded into
``~/.cache/clip`` (where OpenAI's ``clip`` package keeps ``ViT-B-32.pt`` too).

:func:`check_weights` looks in those places only; :func:`require_weights` adds the one
network question (``HF_HUB_OFFLINE``, else a 2-second connect to the hub) when a file must
be downloaded, and stops with one line (which weights, where they were looked for, the
command that fetches them on a machine with internet, the ``--set`` that points at a
file) when it cannot be.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from dferbench.errors import DferbenchError

__all__ = ["MissingWeights", "WeightsStatus", "check_weights", "require_weights", "download_weights", "require_model_weights",
           "hf_cache_dir",
           "clip_cache_dir", "network_problem", "needed_weights"]

PROBE_TIMEOUT_S = 2.0
"""Seconds the network probe waits for a connection to the hub (or the HTTPS proxy)."""


class MissingWeights(DferbenchError, FileNotFoundError):
    """Pretrained weights that are not on this machine and cannot be fetched now."""


@dataclass(frozen=True)
class WeightsStatus:
    """Where the weights of ``(clip_model, pretrained)`` are, or where they were looked for.

    ``source`` is ``"random"`` (no weights needed), ``"file"`` (a local file),
    ``"shipped"`` (a plugin's registered file), ``"cache"`` (an open_clip tag found in the
    Hugging Face or open_clip cache), ``"download"`` (an open_clip tag that is not cached:
    it needs the network) or ``"missing"`` (a file that does not exist, an unknown tag).
    ``path`` is the file to load when found; ``searched`` the places looked in;
    ``advice`` one line on what to do when not found.
    """

    clip_model: str
    pretrained: str | None
    source: str
    path: Path | None = None
    searched: tuple[str, ...] = ()
    advice: str = ""
    tag: Mapping[str, Any] = field(default_factory=dict)  # open_clip's pretrained config of the tag

    @property
    def found(self) -> bool:
        return self.source in ("random", "file", "shipped", "cache")

    @property
    def where(self) -> str:
        """The file that will be loaded, or the places searched, for tables."""
        if self.source == "random":
            return "(random weights)"
        if self.path:
            return str(self.path)
        return "not in " + " nor ".join(self.searched) if self.searched else "-"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it
    once, at import)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.path.expandvars(os.environ[variable])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def clip_cache_dir() -> Path:
    """Where open_clip (and OpenAI's ``clip`` package) keep weights downloaded by URL."""
    return Path("~/.cache/clip").expanduser()


def _hub_files(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip's ``org/repo/[file]`` hub entry -> (repo id, files in the order it asks)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(hf_hub)
    if not filename:
        return repo, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return repo, [filename[:-4] + ".safetensors", filename]
    return repo, [filename]


def _fetch_advice(clip_model: str, tag: str, cfg: Mapping[str, Any]) -> str:
    """How to fetch an open_clip tag's file on a machine with internet and point at it here."""
    python = f"python -c \"import open_clip; open_clip.create_model('{clip_model}', pretrained='{tag}')\""
    if cfg.get("hf_hub"):
        repo, files = _hub_files(cfg["hf_hub"])
        return (f"On a machine with internet run `hf download {repo} {files[0]} --local-dir clip-weights` "
                f"and bring the file here: --set model.pretrained=/path/to/clip-weights/{files[0]} (or run "
                f"`{python}` there and copy its ~/.cache/huggingface/hub/models--{repo.replace('/', '--')} "
                f"into {hf_cache_dir()})")
    name = os.path.basename(urlparse(cfg.get("url", "")).path)
    return (f"On a machine with internet run `curl -L -o {name} {cfg.get('url', '')}` and bring the file here: "
            f"--set model.pretrained=/path/to/{name}")


def _registered(clip_model: str, tag: str) -> WeightsStatus | None:
    """The status of a weights tag a plugin registered (``dferbench_register_clip_models``)."""
    from dferbench.plugin import manager

    owners = {name: reg for name, reg in manager.clip_models().items() if tag in (reg.extra.get("weights") or {})}
    if not owners:
        return None
    if clip_model not in owners:
        return WeightsStatus(clip_model, tag, "missing", advice=(
            f"pretrained={tag!r} exists only for model {', '.join(sorted(owners))}, not {clip_model!r}"))
    reg = owners[clip_model]
    path = Path(reg.extra["weights"][tag])
    if path.is_file():
        return WeightsStatus(clip_model, tag, "shipped", path=path)
    return WeightsStatus(clip_model, tag, "missing", searched=(str(path),), advice=(
        f"the weights {tag!r} of {clip_model!r} (plugin {reg.plugin!r}) are missing: {path}. "
        + (reg.extra.get("source") or "")).strip())


def check_weights(clip_model: str, pretrained: str | os.PathLike | None, *, hint: str = "") -> WeightsStatus:
    """Where the weights of open_clip model ``clip_model`` with ``pretrained`` are.

    Looks in local places only (files, the plugin registry, the Hugging Face cache,
    ``~/.cache/clip``): never touches the network. ``hint``, a model's own advice on where
    its weights come from (FaRL's release page), is added to a missing file's advice.
    """
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    from dferbench.models.clip import unknown_model

    tag = "" if pretrained is None else os.fspath(pretrained)
    unknown = unknown_model(clip_model)
    if unknown:
        return WeightsStatus(clip_model, tag or None, "missing", advice=unknown)
    if not tag:
        return WeightsStatus(clip_model, None, "random")
    registered = _registered(clip_model, tag)
    if registered is not None:
        return registered
    cfg = get_pretrained_cfg(clip_model, tag) if tag in open_clip.list_pretrained_tags_by_model(clip_model) else {}
    if cfg:
        return _check_tag(clip_model, tag, cfg)
    path = Path(tag).expanduser()
    if path.is_file():
        return WeightsStatus(clip_model, tag, "file", path=path)
    tags = open_clip.list_pretrained_tags_by_model(clip_model)
    return WeightsStatus(clip_model, tag, "missing", searched=(str(path.resolve()),), advice=(
        f"pretrained weights for {clip_model!r} not found: {tag!r} is neither an existing file (checked "
        f"{path.resolve()}) nor an open_clip pretrained tag of this model (known tags: {', '.join(tags) or 'none'})"
        + (f"; {hint}" if hint else "; point at a weights file with --set model.pretrained=/path/to/file, "
           "or set model.pretrained=\"\" for random weights")))


def _check_tag(clip_model: str, tag: str, cfg: Mapping[str, Any]) -> WeightsStatus:
    """An open_clip tag: its file in the Hugging Face cache or ``~/.cache/clip``, or "download"."""
    if cfg.get("file"):
        return WeightsStatus(clip_model, tag, "file", path=Path(cfg["file"]), tag=cfg)
    searched: list[str] = []
    described: list[str] = []
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, files = _hub_files(cfg["hf_hub"])
        cache = hf_cache_dir()
        for filename in files:
            cached = try_to_load_from_cache(repo, filename, cache_dir=cache)
            if isinstance(cached, str) and os.path.isfile(cached):
                return WeightsStatus(clip_model, tag, "cache", path=Path(cached), tag=cfg)
        searched.append(str(cache / f"models--{repo.replace('/', '--')}"))
        described.append(f"{searched[-1]} (file {' or '.join(files)})")
    if cfg.get("url"):
        local = clip_cache_dir() / os.path.basename(urlparse(cfg["url"]).path)
        if local.is_file():
            return WeightsStatus(clip_model, tag, "cache", path=local, tag=cfg)
        searched.append(str(local))
        described.append(str(local))
    advice = f"looked in {' and '.join(described)}. {_fetch_advice(clip_model, tag, cfg)}"
    return WeightsStatus(clip_model, tag, "download", searched=tuple(searched), advice=advice, tag=cfg)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _probe_address() -> tuple[str, int]:
    """Host and port a download would connect to first: the HTTPS proxy, else the hub."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    parsed = urlparse(proxy if proxy else os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme == "https" else 80)


def _connect(address: tuple[str, int], timeout: float) -> str | None:
    """None when ``address`` accepts a TCP connection within ``timeout`` seconds (name
    lookup included, which a socket timeout does not bound), else why not."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


_probed: dict[tuple[str, int], str | None] = {}


def network_problem() -> str | None:
    """Why weights cannot be downloaded now (``HF_HUB_OFFLINE`` set, or the hub or proxy
    unreachable within :data:`PROBE_TIMEOUT_S`), or None. The probe runs once per process."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if _truthy(os.environ.get(variable)):
            return f"{variable}={os.environ[variable]}"
    address = _probe_address()
    if address not in _probed:
        _probed[address] = _connect(address, PROBE_TIMEOUT_S)
    problem = _probed[address]
    return None if problem is None else f"no network: cannot reach {address[0]}:{address[1]} ({problem})"


def require_weights(clip_model: str, pretrained: str | os.PathLike | None, *, hint: str = "") -> WeightsStatus:
    """:func:`check_weights`, raising :class:`MissingWeights` (one line) when the weights
    are neither here nor downloadable now. A ``"download"`` status is returned only when
    the network is reachable; the download then happens when the model is built."""
    status = check_weights(clip_model, pretrained, hint=hint)
    if status.found:
        return status
    if status.source == "download":
        problem = network_problem()
        if problem is None:
            return status
        raise MissingWeights(f"CLIP weights {clip_model} pretrained={status.pretrained!r} are not on this machine "
                             f"and cannot be downloaded ({problem}): {status.advice}")
    raise MissingWeights(status.advice)


def download_weights(status: WeightsStatus) -> Path:
    """Download the file of an open_clip tag whose status is ``"download"`` (open_clip's
    downloaders: the Hugging Face hub into :func:`hf_cache_dir`, else its URL into
    ``~/.cache/clip``); :class:`MissingWeights` with the fetch advice when that fails."""
    from open_clip.pretrained import download_pretrained_from_hf, download_pretrained_from_url

    cfg = status.tag
    try:
        if cfg.get("hf_hub"):
            repo, files = _hub_files(cfg["hf_hub"])
            return Path(download_pretrained_from_hf(repo, filename=files[-1], cache_dir=str(hf_cache_dir())))
        return Path(download_pretrained_from_url(cfg["url"], cache_dir=str(clip_cache_dir())))
    except Exception as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise MissingWeights(f"downloading CLIP weights {status.clip_model} pretrained={status.pretrained!r} failed "
                             f"({reason}): {status.advice}") from None


def require_model_weights(model: Any, options: Mapping[str, Any]) -> WeightsStatus | None:
    """:func:`require_weights` for a registered model's ``[model]`` settings, when they name
    a CLIP (``clip_model`` and ``pretrained``); None for models without one."""
    if "clip_model" not in options or "pretrained" not in options:
        return None
    return require_weights(options["clip_model"], options["pretrained"] or None,
                           hint=model.extra.get("weights_help", ""))


OTHER_DATASETS = "others"
"""The preset name :func:`needed_weights` gives the settings used on a dataset without a
preset of its own (``custom``): the model's ``default`` preset, else its options."""


@dataclass(frozen=True)
class NeededWeights:
    """Weights that a model needs under some of its presets, and whether they are here."""

    model: str
    presets: tuple[str, ...]
    status: WeightsStatus


def needed_weights() -> list[NeededWeights]:
    """For every registered model with ``clip_model``/``pretrained`` options, the weights
    each of its dataset presets (and :data:`OTHER_DATASETS`) use, grouped by weights; then
    each weights tag plugins register (``dferbench_register_clip_models``) under model ``-``."""
    from dferbench.plugin import manager
    from dferbench.run.config import option_defaults
    from dferbench.run.runner import _preset_layer

    rows: list[NeededWeights] = []
    for name, reg in manager.models().items():
        if "clip_model" not in reg.options or "pretrained" not in reg.options:
            continue
        groups: dict[tuple[str, str], list[str]] = {}
        for preset in [OTHER_DATASETS] + sorted(p for p in (reg.extra.get("presets") or {}) if p != "default"):
            layer = _preset_layer(reg, "default" if preset == OTHER_DATASETS else preset)
            options = {**option_defaults(reg.options), **(layer.get("model") or {})}
            groups.setdefault((options["clip_model"], str(options["pretrained"] or "")), []).append(preset)
        hint = reg.extra.get("weights_help", "")
        for (clip_model, pretrained), names in groups.items():
            rows.append(NeededWeights(name, tuple(names), check_weights(clip_model, pretrained or None, hint=hint)))
    for clip_model, reg in manager.clip_models().items():
        for tag in reg.extra.get("weights") or {}:
            rows.append(NeededWeights("-", (f"plugin {reg.plugin}",), check_weights(clip_model, tag)))
    return rows
