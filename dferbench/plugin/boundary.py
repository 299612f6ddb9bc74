"""The failure boundary: every call into plugin code goes through :func:`call`.

Dataset and model factories, ``fit``, ``predict``, text sets, model capabilities and the
hook implementations themselves run inside it. A :class:`~dferbench.errors.DferbenchError`
a plugin raises passes unchanged (it is already a message for the user); any other
exception becomes a :class:`PluginFailure`: one line naming what failed, the plugin, its
distribution and version, and the exception's message. The original exception stays
attached as ``__cause__``; ``DFERBENCH_DEBUG=1`` makes the command line print its
traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from dferbench.errors import DferbenchError

T = TypeVar("T")


@dataclass(frozen=True)
class PluginInfo:
    """Who a plugin is: its registered name, and the distribution (and version) it ships in.

    ``distribution`` is ``dferbench`` for the built-in plugins and ``""`` for a plugin
    registered from code that is not an installed package (a test's throwaway plugin).
    """

    name: str
    distribution: str
    version: str

    def __str__(self) -> str:
        where = f"distribution {self.distribution!r} {self.version}".rstrip() if self.distribution \
            else "not from an installed distribution"
        return f"plugin {self.name!r}, {where}"


class PluginFailure(DferbenchError):
    """Plugin code raised: ``what`` failed in ``plugin`` (a :class:`PluginInfo`).

    The message is one line; the exception the plugin raised is ``__cause__``.
    """

    def __init__(self, what: str, plugin: PluginInfo, exc: BaseException):
        self.what, self.plugin = what, plugin
        self.distribution, self.version = plugin.distribution, plugin.version
        detail = " ".join(str(exc).split())
        if len(detail) > 400:
            detail = detail[:400] + " ..."
        super().__init__(f"{what} failed ({plugin}): {type(exc).__name__}"
                         + (f": {detail}" if detail else "")
                         + ("" if debug() else " (DFERBENCH_DEBUG=1 shows the traceback)"))


def debug() -> bool:
    """``DFERBENCH_DEBUG`` is set: show tracebacks."""
    return os.environ.get("DFERBENCH_DEBUG", "") not in ("", "0", "false")


def call(plugin: PluginInfo, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, plugin code of ``plugin``; see the module docstring."""
    try:
        return fn(*args, **kwargs)
    except DferbenchError:
        raise
    except Exception as exc:
        raise PluginFailure(what, plugin, exc) from exc
