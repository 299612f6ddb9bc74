"""The plugin manager: built-in and third-party plugins, loaded lazily and in isolation.

The built-in plugins are listed by module path (:data:`DEFAULT_PLUGINS`) and registered
first, without relying on installed entry-point metadata; third-party plugins come from
the ``dferbench`` entry-point group. Hooks are called through ``pm.hook.<name>(register=...)``,
so pluggy's monitoring sees every call. Each registry (datasets, models, text sets, CLIP
models, face detectors, commands) is built once per process and rebuilt only when the set
of registered plugins changes. Environment variables steer loading:

- ``DFERBENCH_DISABLE_PLUGINS=a,b`` skips the plugins named ``a`` and ``b``, by plugin
  (entry-point) name or by distribution name; the word ``third-party`` skips every plugin
  not shipped with dferbench.
- ``DFERBENCH_STRICT_PLUGINS=1`` makes a plugin that fails to load, fails inside a hook
  or registers something invalid fail the command (by default it is reported, with its
  distribution, and skipped).
- ``DFERBENCH_TRACE_PLUGINS=1`` prints every hook call, the implementations answering it
  and what each registered, to stderr.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import re
import sys
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping

import pluggy

from dferbench.errors import PluginError, unknown_name
from dferbench.plugin import hookspecs
from dferbench.plugin.boundary import PluginInfo
from dferbench.plugin.registration import KINDS, make_spec
from dferbench.plugin.specs import (
    ClipModelSpec,
    CommandSpec,
    DatasetSpec,
    FaceDetectorSpec,
    ModelSpec,
    TextSetSpec,
)

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


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, with every hook implementation run inside the failure boundary.

    pluggy calls the implementations of a hook one after another and stops at the first
    exception, so one broken plugin would silence every plugin called after it. Each
    implementation's function is therefore wrapped by :func:`_guarded` as it is registered.
    """

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        plugin_name = super().register(plugin, name)
        if plugin_name is not None:
            for caller in self.get_hookcallers(plugin) or []:
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin and not getattr(impl.function, "_dferbench_guarded", False):
                        impl.function = _guarded(caller.name, impl.plugin_name, impl.function)  # type: ignore[misc]
        return plugin_name


pm = _PluginManager("dferbench")
pm.add_hookspecs(hookspecs)

_loaded = False
load_failures: list[str] = []
"""One line per plugin that failed to load, for ``dferbench plugins``."""
plugin_versions: dict[str, str] = {}
"""Plugin name -> version of every plugin loaded by :func:`load_plugins` (recorded in results)."""
_infos: dict[str, PluginInfo] = {}
_builtins: set[str] = set()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503: My_Lab.Plugin == my-lab-plugin


def _disabled() -> set[str]:
    return {_canonical(p.strip()) for p in os.environ.get("DFERBENCH_DISABLE_PLUGINS", "").split(",") if p.strip()}


def _strict() -> bool:
    return os.environ.get("DFERBENCH_STRICT_PLUGINS", "") not in ("", "0", "false")


def _tracing() -> bool:
    return os.environ.get("DFERBENCH_TRACE_PLUGINS", "") not in ("", "0", "false")


def load_plugins() -> None:
    """Register the built-in plugins and every enabled entry point, once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    disabled = _disabled()
    from dferbench import __version__

    for module_name in DEFAULT_PLUGINS:
        name = module_name.rsplit(".", 1)[1]
        if _canonical(name) in disabled or _canonical(BUILTIN_DISTRIBUTION) in disabled or pm.has_plugin(name):
            continue
        pm.register(importlib.import_module(module_name), name=name)
        _builtins.add(name)
        _infos[name] = PluginInfo(name, BUILTIN_DISTRIBUTION, __version__)
        plugin_versions[name] = __version__
    pm.check_pending()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "unknown"
        version = ep.dist.version if ep.dist else ""
        third_party = dist != BUILTIN_DISTRIBUTION
        if {_canonical(ep.name), _canonical(dist)} & disabled or ("third-party" in disabled and third_party):
            continue
        if pm.has_plugin(ep.name):
            taken = plugin_info(ep.name)
            warnings.warn(f"plugin {ep.name!r} from distribution {dist!r} {version}: that plugin name is taken by "
                          f"{taken}; skipped (rename its entry point)", stacklevel=2)
            continue
        try:
            pm.register(ep.load(), name=ep.name)
            pm.check_pending()
        except Exception as exc:  # one broken plugin must not take the others down
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            message = (f"plugin {ep.name!r} from distribution {dist!r} failed to load: "
                       f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            if _strict():
                raise PluginError(message + " (DFERBENCH_STRICT_PLUGINS is set)") from exc
            load_failures.append(message)
            warnings.warn(f"{message}; skipped. Disable it with DFERBENCH_DISABLE_PLUGINS={dist}", stacklevel=2)
            continue
        _infos[ep.name] = PluginInfo(ep.name, dist, version)
        plugin_versions[ep.name] = version or "unknown"
    if _tracing():
        pm.add_hookcall_monitoring(_trace_before, _trace_after)


@functools.cache
def _module_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def plugin_info(name: str) -> PluginInfo:
    """The plugin registered as ``name``, with its distribution and version.

    Plugins registered in code (``pm.register(obj, name=...)``) are traced to the installed
    distribution holding their module, when there is one."""
    if name in _infos:
        return _infos[name]
    plugin = pm.get_plugin(name)
    module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
    for dist in _module_distributions().get(module.split(".")[0], []):
        try:
            return PluginInfo(name, dist, importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            continue
    return PluginInfo(name, "", "")


def is_builtin(name: str) -> bool:
    """Whether plugin ``name`` is one of dferbench's own (:data:`DEFAULT_PLUGINS`)."""
    return name in _builtins


# --------------------------------------------------------------------------- hook calls


@dataclass
class _Collection:
    """What the implementations of one hook call registered, by plugin."""

    kind: str
    found: list[tuple[str, Any]] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)


_collecting: ContextVar[_Collection | None] = ContextVar("dferbench_collecting", default=None)
_calling: ContextVar[str | None] = ContextVar("dferbench_calling_plugin", default=None)


def _guarded(hook_name: str, plugin_name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a hook implementation) inside the failure boundary: an exception is reported
    with the plugin and its distribution, and that plugin's registrations in this call are
    dropped; the other plugins' implementations still run."""

    @functools.wraps(fn)
    def guarded(*args: Any) -> Any:
        token = _calling.set(plugin_name)
        try:
            answer = fn(*args)
        except Exception as exc:
            info = plugin_info(plugin_name)
            if isinstance(exc, PluginError):
                message = str(exc)
            else:
                message = f"{hook_name} failed ({info}): {type(exc).__name__}: {' '.join(str(exc).split())}"
            collection = _collecting.get()
            if collection is not None:
                collection.failed.add(plugin_name)
            if _strict():
                raise PluginError(message + " (DFERBENCH_STRICT_PLUGINS is set)") from exc
            warnings.warn(message + "; its registrations are skipped", stacklevel=2)
            return None
        finally:
            _calling.reset(token)
        if _tracing():
            collection = _collecting.get()
            made = [repr(spec.name) for who, spec in collection.found if who == plugin_name] if collection else []
            said = f"registered {', '.join(made)}" if made else "registered nothing"
            print(f"[dferbench]   {plugin_name} ({plugin_info(plugin_name)}): {said}; returned {answer!r}",
                  file=sys.stderr)
        return answer

    guarded._dferbench_guarded = True  # type: ignore[attr-defined]
    return guarded


def _trace_before(hook_name: str, impls: list, kwargs: dict) -> None:
    args = ", ".join(f"{k}={getattr(v, '__name__', type(v).__name__)}" for k, v in kwargs.items())
    print(f"[dferbench] {hook_name}({args}) -> implementations: {', '.join(i.plugin_name for i in impls) or 'none'}",
          file=sys.stderr)


def _trace_after(outcome: Any, hook_name: str, impls: list, kwargs: dict) -> None:
    answer = repr(outcome.exception) if outcome.exception else repr(outcome.get_result())
    print(f"[dferbench] {hook_name} answered {answer}", file=sys.stderr)


def _collect(kind: str) -> list[Any]:
    """Call the hook of ``kind`` once through ``pm.hook``; return the specs, built-ins first."""
    load_plugins()
    collection = _Collection(kind)

    def register(*args: Any, **kwargs: Any) -> None:
        who = _calling.get()
        if who is None:
            raise PluginError(f"register() of a {kind} called outside a dferbench hook")
        collection.found.append((who, make_spec(kind, plugin_info(who), args, kwargs)))

    register.__name__ = f"register_{kind.replace(' ', '_').lower()}"
    token = _collecting.set(collection)
    try:
        getattr(pm.hook, KINDS[kind][2])(register=register)
    finally:
        _collecting.reset(token)
    order = {name: i for i, (name, _) in enumerate(pm.list_name_plugin())}
    kept = [(who, spec) for who, spec in collection.found if who not in collection.failed]
    kept.sort(key=lambda item: (not is_builtin(item[0]), order.get(item[0], len(order))))
    return [spec for _, spec in kept]


def _registry(kind: str) -> dict[str, Any]:
    """Specs of ``kind`` by name; of two with one name the first (built-ins first) wins and
    the other is skipped with a warning naming both plugins and distributions."""
    found: dict[str, Any] = {}
    for spec in _collect(kind):
        first = found.get(spec.name)
        if first is None:
            found[spec.name] = spec
            continue
        if first.plugin == spec.plugin:
            message = f"{spec.plugin} registered the {kind} {spec.name!r} twice; the second is skipped"
        else:
            whose = "the built-in one" if is_builtin(first.plugin.name) else "the one"
            message = (f"{kind} {spec.name!r} of {spec.plugin} clashes with {whose} of {first.plugin}; "
                       f"it is skipped (rename it, or disable one with DFERBENCH_DISABLE_PLUGINS)")
        if _strict():
            raise PluginError(message + " (DFERBENCH_STRICT_PLUGINS is set)")
        warnings.warn(message, stacklevel=3)
    return found


_cache: dict[str, tuple[Any, dict[str, Any]]] = {}


def _cached(kind: str) -> dict[str, Any]:
    """:func:`_registry`, rebuilt only when the set of registered plugins has changed."""
    load_plugins()
    key = tuple(pm.list_name_plugin())
    hit = _cache.get(kind)
    if hit is None or hit[0] != key:
        hit = _cache[kind] = (key, _registry(kind))
    return hit[1]


def datasets() -> dict[str, DatasetSpec]:
    """Every registered dataset by name."""
    return _cached("dataset")


def models() -> dict[str, ModelSpec]:
    """Every registered model by name."""
    return _cached("model")


def prompts() -> dict[str, TextSetSpec]:
    """Every registered text set by name."""
    return _cached("text set")


def clip_models() -> dict[str, ClipModelSpec]:
    """Every registered CLIP architecture / weights by name."""
    return _cached("CLIP model")


def face_detectors() -> dict[str, FaceDetectorSpec]:
    """Every registered face detector by name."""
    return _cached("face detector")


def commands() -> list[CommandSpec]:
    """The click commands plugins offer, built-ins first."""
    return list(_cached("command").values())


_GETTERS = {"dataset": datasets, "model": models, "text set": prompts, "CLIP model": clip_models,
            "face detector": face_detectors}


def get(kind: str, name: str) -> Any:
    """Look up a registered dataset, model, text set, CLIP model or face detector, with a "did
    you mean" on a miss."""
    registry = _GETTERS[kind]()
    if name not in registry:
        raise unknown_name(kind, name, registry)
    return registry[name]


def plugin_table() -> list[dict[str, Any]]:
    """Every registered plugin with its distribution, version and the hooks it implements."""
    load_plugins()
    rows = []
    for name, plugin in pm.list_name_plugin():
        info = plugin_info(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        version = info.version or getattr(plugin, "__version__", "") or "-"
        rows.append({"name": name, "distribution": info.distribution or "-", "version": version, "hooks": hooks})
    return sorted(rows, key=lambda r: r["name"])

