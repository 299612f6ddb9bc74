"""A plugin's ``register(...)`` call turned into a spec: the signature its hookspecs
Protocol declares, values checked, one-line :class:`~dferbench.errors.PluginError` otherwise."""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import fields
from typing import Any, Mapping

from dferbench.errors import PluginError
from dferbench.plugin import hookspecs
from dferbench.plugin.boundary import PluginInfo
from dferbench.plugin.specs import (
    FAMILIES,
    ClipModelSpec,
    CommandSpec,
    DatasetSpec,
    FaceDetectorSpec,
    ModelSpec,
    TextSetSpec,
)

# kind -> (its Protocol in hookspecs: the register signature, its spec, its hook)
KINDS: dict[str, tuple[type, type, str]] = {
    "dataset": (hookspecs.RegisterDataset, DatasetSpec, "dferbench_register_datasets"),
    "model": (hookspecs.RegisterModel, ModelSpec, "dferbench_register_models"),
    "text set": (hookspecs.RegisterPrompts, TextSetSpec, "dferbench_register_prompts"),
    "CLIP model": (hookspecs.RegisterClipModel, ClipModelSpec, "dferbench_register_clip_models"),
    "face detector": (hookspecs.RegisterFaceDetector, FaceDetectorSpec, "dferbench_register_face_detectors"),
    "command": (hookspecs.RegisterCommands, CommandSpec, "dferbench_register_commands"),
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$", re.IGNORECASE)


def register_signature(kind: str) -> inspect.Signature:
    """The ``register(...)`` signature of ``kind`` (``dataset``, ``model``...), from hookspecs."""
    signature = inspect.signature(KINDS[kind][0].__call__)
    return signature.replace(parameters=list(signature.parameters.values())[1:])  # without self


def signature_text(kind: str) -> str:
    """``register(name, factory, *, description="", ...)``: the signature as CONTRIBUTING.md shows it."""
    parts, star = [], False
    for p in register_signature(kind).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = "" if p.default is p.empty else "=" + (json.dumps(p.default) if isinstance(p.default, str)
                                                          else repr(p.default))
        parts.append(p.name + default)
    return f"register({', '.join(parts)})"


def make_spec(kind: str, plugin: PluginInfo, args: tuple, kwargs: dict) -> Any:
    """The spec for one ``register(*args, **kwargs)`` call, or a one-line PluginError."""
    signature = register_signature(kind)
    shown = args[0] if args and isinstance(args[0], str) else kwargs.get("name", "")
    what = f"{plugin}: register() of {kind} {shown!r}" if shown else f"{plugin}: register() of a {kind}"
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        valid = ", ".join(p for p in signature.parameters)
        raise PluginError(f"{what}: {exc}; the arguments are {valid}") from None
    bound.apply_defaults()
    values = dict(bound.arguments)
    for key in ("options", "presets", "profile", "weights"):
        if key in values and values[key] is None:
            values[key] = {}
    problem = invalid(kind, values)
    if problem:
        raise PluginError(f"{what}: {problem}")
    spec_type = KINDS[kind][1]
    return spec_type(plugin=plugin, **{f.name: values[f.name] for f in fields(spec_type) if f.name in values})


def invalid(kind: str, values: dict[str, Any]) -> str:
    """What is wrong with one registration's values, or ""."""
    if kind == "command":
        if not hasattr(values["command"], "name") or not callable(values["command"]):
            return f"command must be a click.Command, got {type(values['command']).__name__}"
        return "" if values["group"] in ("", "bench") else f"group must be '' or 'bench', got {values['group']!r}"
    name = values["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        return f"invalid name {name!r}: use letters, digits, '-', '_' or '.', no spaces"
    for key in ("factory", "texts"):
        if key in values and not callable(values[key]):
            return f"{key} must be callable, got {type(values[key]).__name__}"
    for key in ("check", "input_size", "network", "optimizer", "rebuild", "load_checkpoint"):
        if values.get(key) is not None and not callable(values[key]):
            return f"{key} must be callable or None, got {type(values[key]).__name__}"
    for key in ("options", "presets", "profile", "weights"):
        if key in values and not isinstance(values[key], Mapping):
            return f"{key} must be a dict, got {type(values[key]).__name__}"
    if "profile" in values and any(s not in ("data", "model") or not isinstance(v, Mapping)
                                   for s, v in values["profile"].items()):
        return "profile must be {'data': {...}, 'model': {...}}"
    if values.get("classes") is not None and not (isinstance(values["classes"], list) and values["classes"]
                                                  and all(isinstance(c, str) for c in values["classes"])):
        return f"classes must be a non-empty list of class names, got {values['classes']!r}"
    if values.get("presets_like") is not None and not (isinstance(values["presets_like"], str)
                                                       and _NAME.match(values["presets_like"])
                                                       and values["presets_like"] != name):
        return f"presets_like must name another dataset, got {values['presets_like']!r}"
    if "family" in values and values["family"] not in FAMILIES:
        return f"family must be one of {', '.join(repr(f) for f in FAMILIES)}, got {values['family']!r}"
    if "temporal" in values and not (isinstance(values["temporal"], bool) or callable(values["temporal"])):
        return f"temporal must be true/false or temporal(options) -> bool, got {values['temporal']!r}"
    return ""
