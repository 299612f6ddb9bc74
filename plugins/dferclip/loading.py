"""DFER-CLIP's checkpoint capabilities: what a dferbench checkpoint records to rebuild the
network (:func:`rebuild_info`), rebuilding it (:func:`rebuild_network`), and reading the
files of DFER-CLIP's own kinds (:func:`load_checkpoint`): the authors' released ``.pth``
and the ``dferbench.dferclip`` safetensors + sidecar that dferbench wrote before its
generic format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from dferbench.models.checkpoints import (
    CheckpointError,
    CheckpointInfo,
    LoadedNetwork,
    file_kind,
    load_state,
    read_sidecar,
    read_weights,
    sidecar_path,
)
from dferbench_plugins.dferclip.network import DFERCLIP


def rebuild_info(model: DFERCLIP) -> dict[str, Any]:
    """The sidecar's ``rebuild`` for ``model``: its constructor options (without the class
    texts, which the sidecar holds) and its CLIP's open_clip architecture."""
    from dferbench_plugins.dferclip.checkpoints import describe_clip_architecture

    options = model.options()
    del options["class_texts"]
    return {"options": options, "clip_config": describe_clip_architecture(model)}


def _build(clip_config: Mapping[str, Any], class_texts: list[str], options: Mapping[str, Any]) -> DFERCLIP:
    from dferbench.models.clip import build_clip_from_config, default_tokenizer

    clip = build_clip_from_config(dict(clip_config))
    tokenizer = default_tokenizer(int(clip_config["text_cfg"]["context_length"]))
    return DFERCLIP(clip, list(class_texts), tokenizer=tokenizer, **dict(options))


def rebuild_network(info: CheckpointInfo, device: str = "cpu") -> DFERCLIP:
    """The DFER-CLIP a dferbench checkpoint describes, randomly initialised (the core
    loads the weights)."""
    return _build(info.rebuild["clip_config"], info.class_texts, info.rebuild["options"]).to(device)


def _legacy(path: Path, sidecar: Mapping[str, Any]) -> LoadedNetwork:
    """A ``dferbench.dferclip`` checkpoint: ``options`` (with the class texts),
    ``clip_config`` and ``meta`` (``classes``, ``config``)."""
    where = sidecar_path(path)
    try:
        options = dict(sidecar["options"])
        texts = options.pop("class_texts")
        cfg = sidecar["clip_config"]
        meta = sidecar.get("meta") or {}
        network = _build(cfg, texts, options)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: not a complete {sidecar.get('format')} sidecar "
                              f"({type(exc).__name__}: {exc})") from None
    load_state(network, read_weights(path), path)
    data = {k: v for k, v in (meta.get("config") or {}).get("data", {}).items()
            if k in ("num_frames", "image_size", "normalize")}
    classes = meta.get("classes")
    return LoadedNetwork(network.eval(), list(texts), f"loaded the DFER-CLIP checkpoint {path} "
                         f"(dferbench's earlier {sidecar.get('format')} format)",
                         classes=list(classes) if isinstance(classes, list) else None, data=data)


def _authors(path: Path, options: Mapping[str, Any]) -> LoadedNetwork:
    from dferbench_plugins.dferclip.checkpoints import load_authors_checkpoint

    try:
        loaded = load_authors_checkpoint(path, preferred_clip=options.get("clip_model"))
    except (ValueError, RuntimeError, NotImplementedError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a DFER-CLIP checkpoint this dferbench can read: "
                              f"{' '.join(str(exc).split())}") from None
    network = loaded.model
    message = (f"loaded the DFER-CLIP authors' checkpoint {path}: architecture {loaded.clip_model_name or 'custom'}, "
               f"epoch {loaded.epoch}, {len(loaded.dropped_keys)} duplicated clip_model_ keys dropped, "
               f"pickled objects not loaded: {', '.join(loaded.skipped_objects) or 'none'}; "
               f"class texts read from the checkpoint")
    data = {"num_frames": network.num_frames, "image_size": int(loaded.clip_config["vision_cfg"]["image_size"])}
    return LoadedNetwork(network, list(loaded.class_texts), message, data=data)


def load_checkpoint(path: str | os.PathLike[str], options: Mapping[str, Any], device: str = "cpu") -> LoadedNetwork:
    """Read a DFER-CLIP file that is not a dferbench checkpoint: the authors' ``.pth``
    (classes come from the dataset the user names; frames and image size from the
    weights) or an earlier ``dferbench.dferclip`` checkpoint. ``options``: the run's
    ``[model]`` section; its ``clip_model`` is used when its shapes fit the file's."""
    path = Path(path)
    from dferbench_plugins.dferclip.checkpoints import LEGACY_FORMAT

    if file_kind(path) == "torch":
        loaded = _authors(path, options)
    else:
        sidecar = read_sidecar(path)
        found = sidecar.get("format") if isinstance(sidecar, dict) else None
        if found != LEGACY_FORMAT:
            raise CheckpointError(f"{sidecar_path(path)}: a sidecar of format {found!r}, which DFER-CLIP does not read")
        loaded = _legacy(path, sidecar)
    loaded.network.to(device)
    return loaded
