"""The plugin manager: built-in and third-party plugins, loaded lazily and in isolation.

The built-in plugins are listed by module path (:data:`DEFAULT_PLUGINS`) and registered
first, without relying on installed entry-point metadata; third-party plugins come from
the ``dferbench`` entry-point group. Environment variables steer loading:

- ``DFERBENCH_DISABLE_PLUGINS=a,b`` skips the named entry points; the word
  ``third-party`` skips every plugin not shipped with dferbench.
- ``DFERBENCH_STRICT_PLUGINS=1`` makes a plugin that fails to load fail the run
  (by default it is reported, with its distribution, and skipped).
- ``DFERBENCH_TRACE_PLUGINS=1`` prints every hook call and its results to stderr.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pluggy

from dferbench.plugin import hookspecs
from dferbench.errors import PluginError, unknown_name

ENTRY_POINT_GROUP = "dferbench"
BUILTIN_DISTRIBUTION = "dferbench"

DEFAULT_PLUGINS = (
    "dferbench_plugins.synthetic",
    "dferbench_plugins.datasets",
    "dferbench_plugins.textsets",
    "dferbench_plugins.dferclip",
    "dferbench_plugins.baselines",
    "dferbench_plugins.faces",
)
"""The built-in plugins, registered under their last name component (``synthetic``...)."""

pm = pluggy.PluginManager("dferbench")
pm.add_hookspecs(hookspecs)

_loaded = False
load_failures: list[str] = []
plugin_versions: dict[str, str] = {}


def _disabled() -> set[str]:
    return {p.strip() for p in os.environ.get("DFERBENCH_DISABLE_PLUGINS", "").split(",") if p.strip()}


def _strict() -> bool:
    return os.environ.get("DFERBENCH_STRICT_PLUGINS", "") not in ("", "0", "false")


def load_plugins() -> None:
    """Register every enabled entry point once per process; later calls do nothing."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    disabled = _disabled()
    from dferbench import __version__

    for module_name in DEFAULT_PLUGINS:
        name = module_name.rsplit(".", 1)[1]
        if name in disabled or pm.has_plugin(name):
            continue
        pm.register(importlib.import_module(module_name), name=name)
        plugin_versions[name] = __version__
    pm.check_pending()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "unknown"
        if ep.name in disabled or ("third-party" in disabled and dist != BUILTIN_DISTRIBUTION):
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
            pm.check_pending()
        except Exception as exc:  # one broken plugin must not take the others down
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            message = f"plugin {ep.name!r} from distribution {dist!r} failed to load: {type(exc).__name__}: {exc}"
            if _strict():
                raise PluginError(message + " (DFERBENCH_STRICT_PLUGINS is set)") from exc
            load_failures.append(message)
            warnings.warn(message + "; skipped. Disable it with DFERBENCH_DISABLE_PLUGINS=" + ep.name, stacklevel=2)
            continue
        plugin_versions[ep.name] = ep.dist.version if ep.dist else "unknown"
    if os.environ.get("DFERBENCH_TRACE_PLUGINS"):
        pm.add_hookcall_monitoring(_trace_before, _trace_after)


def _trace_before(hook_name: str, impls: list, kwargs: dict) -> None:
    print(f"[dferbench] {hook_name} -> {[i.plugin_name for i in impls]}", file=sys.stderr)


def _trace_after(outcome: Any, hook_name: str, impls: list, kwargs: dict) -> None:
    print(f"[dferbench] {hook_name} done", file=sys.stderr)


@dataclass(frozen=True)
class Registered:
    """One thing a plugin registered: a dataset, a model or a text set."""

    kind: str
    name: str
    target: Callable[..., Any]
    plugin: str
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def _collect(kind: str, hook: Callable[..., Any]) -> dict[str, Registered]:
    load_plugins()
    found: dict[str, Registered] = {}
    for impl in hook.get_hookimpls():  # registration order: built-ins first

        def register(name: str, target: Any = None, *, description: str = "",
                     options: Mapping[str, Any] | None = None, **extra: Any) -> None:
            if not name or name != name.strip() or " " in name:
                raise PluginError(f"plugin {impl.plugin_name!r} registered an invalid {kind} name {name!r}")
            if name in found:
                raise PluginError(
                    f"{kind} {name!r} registered twice: by {found[name].plugin!r} and {impl.plugin_name!r}"
                )
            found[name] = Registered(kind, name, target, impl.plugin_name, description, dict(options or {}), extra)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            message = f"plugin {impl.plugin_name!r} failed in {hook.name}: {type(exc).__name__}: {exc}"
            if _strict():
                raise PluginError(message) from exc
            warnings.warn(message + "; its registrations are skipped", stacklevel=2)
    return found


def datasets() -> dict[str, Registered]:
    return _collect("dataset", pm.hook.dferbench_register_datasets)


def models() -> dict[str, Registered]:
    return _collect("model", pm.hook.dferbench_register_models)


def prompts() -> dict[str, Registered]:
    return _collect("text set", pm.hook.dferbench_register_prompts)


def clip_models() -> dict[str, Registered]:
    return _collect("CLIP model", pm.hook.dferbench_register_clip_models)


def face_detectors() -> dict[str, Registered]:
    return _collect("face detector", pm.hook.dferbench_register_face_detectors)


def commands() -> list[Any]:
    """The click commands plugins offer, in registration order."""
    load_plugins()
    found: list[Any] = []
    pm.hook.dferbench_register_commands(register=found.append)
    return found


def get(kind: str, name: str) -> Registered:
    """Look up a registered dataset, model or text set, with a "did you mean" on a miss."""
    registry = {"dataset": datasets, "model": models, "text set": prompts, "face detector": face_detectors}[kind]()
    if name not in registry:
        raise unknown_name(kind, name, registry)
    return registry[name]


def plugin_table() -> list[dict[str, Any]]:
    """Every registered plugin with its version and the hooks it implements."""
    load_plugins()
    rows = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        version = plugin_versions.get(name) or getattr(plugin, "__version__", "") or "-"
        rows.append({"name": name, "version": version, "hooks": hooks})
    return sorted(rows, key=lambda r: r["name"])
