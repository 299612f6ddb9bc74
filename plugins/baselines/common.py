"""What the baselines share: frozen CLIP features from the cache, one sentence per class."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dferbench import DferbenchError


def frozen_features(visual: torch.nn.Module, clips: Any, ctx: Any, weights_id: str) -> np.ndarray:
    """Frame-averaged features ``[N, E]`` (un-normalised) of ``clips`` with test-time
    sampling, read from the feature cache under ``ctx.workdir`` when the model's
    ``feature_cache`` option is on, computed in its ``feature_precision`` (fp32 if none)."""
    from dferbench import cached_frame_features

    cache = ctx.workdir / "features" if ctx.options.get("feature_cache", True) else None
    frames = cached_frame_features(visual, clips, cache_dir=cache, batch_size=ctx.train["eval_batch_size"],
                                   device=ctx.device, weights_id=weights_id, enabled_progress=ctx.progress,
                                   precision=ctx.options.get("feature_precision", "fp32"))
    return frames.mean(axis=1)  # [N, T, E] -> [N, E]


def single_sentences(ctx: Any) -> list[str]:
    """One text per class from the model's ``text`` option (prompt learners read one)."""
    texts = ctx.texts(ctx.options["text"], ctx.classes)
    if any(len(t) != 1 for t in texts):
        raise DferbenchError(f"{ctx.model} reads one sentence per class; text set {ctx.options['text']!r} gives "
                             "several (an ensemble): choose a single-sentence text set such as class-names")
    return [t[0] for t in texts]
