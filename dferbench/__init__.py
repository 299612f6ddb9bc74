"""dferbench: an evaluation harness for dynamic facial expression recognition.

The names in ``__all__`` are the public API: what a plugin needs, documented in
CONTRIBUTING.md and kept stable. Everything else (``dferbench.run.*``, ``dferbench.data.*``
...) is internal and may change. Import them from here::

    from dferbench import ClipRecord, DFERDataset, hookimpl, train_module

They load lazily, on first use, so that ``import dferbench`` and ``dferbench --help``
stay fast (no torch import).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it, or "module:attribute" (each object carries its own docstring).
_PUBLIC: dict[str, str] = {
    # the plugin contract
    "hookimpl": "dferbench.plugin.hookspecs",
    "DatasetSpec": "dferbench.plugin.specs",
    "ModelSpec": "dferbench.plugin.specs",
    "TextSetSpec": "dferbench.plugin.specs",
    "ClipModelSpec": "dferbench.plugin.specs",
    "PluginInfo": "dferbench.plugin.boundary",
    # declaring a plugin's settings (validated before any unit starts)
    "Option": "dferbench.run.config",
    "check_file": "dferbench.run.config",
    "check_text_set": "dferbench.run.config",
    # errors
    "DferbenchError": "dferbench.errors",
    "PluginError": "dferbench.errors",
    "PluginFailure": "dferbench.plugin.boundary",
    # datasets: records, readers, class orders, checks
    "ClipRecord": "dferbench.data.records",
    "DFERDataset": "dferbench.data.records",
    "FrameReader": "dferbench.data.records",
    "FrameFolderReader": "dferbench.data.readers",
    "VideoFileReader": "dferbench.data.readers",
    "AutoReader": "dferbench.data.readers",
    "BadClipError": "dferbench.data.readers",
    "list_frames": "dferbench.data.readers",
    "count_frames": "dferbench.data.readers",
    "is_video_file": "dferbench.data.readers",
    "DFEW_CLASSES": "dferbench.data.classes",
    "MAFW_CLASSES": "dferbench.data.classes",
    "EMOTIONS": "dferbench.data.classes",
    "CheckReport": "dferbench.data.checks",
    "CHECK_KINDS": "dferbench.data.checks",
    "decode_files": "dferbench.data.checks",
    # clips as a model sees them
    "ClipSet": "dferbench.data.loader",
    "segment_indices": "dferbench.data.sampling",
    "build_clip_transform": "dferbench.data.transforms",
    "AUGMENTATIONS": "dferbench.data.transforms",
    # the method protocol and the shared training loop
    "ModelContext": "dferbench.plugin.method",
    "Monitor": "dferbench.plugin.method",
    "Method": "dferbench.plugin.method",
    "require_training_clips": "dferbench.plugin.method",
    "train_module": "dferbench.run.engine",
    "predict_module": "dferbench.run.engine",
    "autocast": "dferbench.run.engine",
    "class_texts": "dferbench.run.runner",
    # shared model blocks
    "create_clip": "dferbench.models.clip",
    "clip_image_size": "dferbench.models.clip",
    "clip_input_size": "dferbench.models.clip",
    "build_clip_from_config": "dferbench.models.clip",
    "register_model_configs": "dferbench.models.clip",
    "default_tokenizer": "dferbench.models.clip",
    "build_temporal_model": "dferbench.models.temporal",
    "PromptLearner": "dferbench.models.prompt_learner",
    "TextEncoder": "dferbench.models.prompt_learner",
    "coop_name_lens": "dferbench.models.prompt_learner",
    "cached_frame_features": "dferbench.models.features",
    "video_features": "dferbench.models.features",
    "weights_digest": "dferbench.models.features",
    "FeatureSet": "dferbench.models.features",
    "text_classifier": "dferbench.models.zeroshot",
    "full_precision": "dferbench.models.precision",
    "read_torch_checkpoint": "dferbench.models.torch_checkpoint",
    "Inert": "dferbench.models.torch_checkpoint",
    "read_clip_state_dict": "dferbench.models.weight_files",
    # checkpoints: dferbench's format, and what a model's load_checkpoint returns
    "CheckpointError": "dferbench.models.checkpoints",
    "CheckpointInfo": "dferbench.models.checkpoints",
    "LoadedNetwork": "dferbench.models.checkpoints",
    "checkpoint_kind": "dferbench.models.checkpoints:file_kind",
    "sidecar_path": "dferbench.models.checkpoints",
    "read_sidecar": "dferbench.models.checkpoints",
    "read_weights": "dferbench.models.checkpoints",
    "load_state": "dferbench.models.checkpoints",
    # face detectors (dferbench predict)
    "Box": "dferbench.predict.tracking",
    "FaceDetector": "dferbench.predict.detection",
    # metrics and files
    "uar": "dferbench.report.metrics",
    "war": "dferbench.report.metrics",
    "compute_metrics": "dferbench.report.metrics",
    "replacing": "dferbench.files",
    "read_toml": "dferbench.files",
    "parse_toml": "dferbench.files",
}
_MODULES = ("api", "testing")  # public submodules

__all__ = ["__version__", *_PUBLIC, *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module, _, attribute = _PUBLIC[name].partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
    elif name in _MODULES:
        value = importlib.import_module(f"dferbench.{name}")
    else:
        raise AttributeError(f"module 'dferbench' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
