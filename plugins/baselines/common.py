"""What the baselines share: frozen CLIP features from the cache, served like clips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from dferbench.data.loader import BatchPlan
from dferbench.errors import DferbenchError


@dataclass
class FeatureSet:
    """Frozen per-clip features with the ``batches`` interface of a ``ClipSet``, so
    ``train_module`` / ``predict_module`` train and score on them unchanged.

    ``features``: ``[N, E]`` (frame-averaged, un-normalised) in the order of the clips.
    Batches hold ``features [B, E]`` where a ``ClipSet`` has video, in the same order
    for the same ``(seed, epoch)`` and sharded over ranks the same way.
    """

    features: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, *, train: bool, batch_size: int, device: str = "cpu", seed: int = 0,
                drop_last: bool = False, rank: int = 0, world: int = 1) -> FeatureBatches:
        return FeatureBatches(self, train=train, batch_size=batch_size, device=device, seed=seed,
                              drop_last=drop_last, rank=rank, world=world)


class FeatureBatches:
    """``ClipSet.batches`` for features: the whole set lives on ``device``, a batch is an
    index into it. Items: ``(features [B, E], labels [B], indices [B], global batch size)``."""

    pipeline = "cached-features"
    workers = 0
    prefetch = 0

    def __init__(self, features: FeatureSet, *, train: bool, batch_size: int, device: str, seed: int,
                 drop_last: bool, rank: int, world: int):
        self.plan = BatchPlan(len(features), batch_size, train=train, seed=seed, drop_last=drop_last,
                              rank=rank, world=world)
        self.x = torch.from_numpy(np.ascontiguousarray(features.features, dtype=np.float32)).to(device)
        self.y = torch.from_numpy(features.labels).to(device)

    def __len__(self) -> int:
        return len(self.plan)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        self.plan.set_epoch(epoch)
        for index, global_size in self.plan.plan():
            i = torch.from_numpy(index)
            j = i.to(self.x.device)
            yield self.x[j], self.y[j], i, global_size


def frozen_features(visual: torch.nn.Module, clips: Any, ctx: Any, weights_id: str) -> np.ndarray:
    """Frame-averaged features ``[N, E]`` (un-normalised) of ``clips`` with test-time
    sampling, read from the feature cache under ``ctx.workdir`` when the model's
    ``feature_cache`` option is on."""
    from dferbench.models.features import cached_frame_features

    cache = ctx.workdir / "features" if ctx.options.get("feature_cache", True) else None
    frames = cached_frame_features(visual, clips, cache_dir=cache, batch_size=ctx.train["eval_batch_size"],
                                   device=ctx.device, weights_id=weights_id, enabled_progress=ctx.progress)
    return frames.mean(axis=1)  # [N, T, E] -> [N, E]


def single_sentences(ctx: Any) -> list[str]:
    """One text per class from the model's ``text`` option (prompt learners read one)."""
    texts = ctx.texts(ctx.options["text"], ctx.classes)
    if any(len(t) != 1 for t in texts):
        raise DferbenchError(f"{ctx.model} reads one sentence per class; text set {ctx.options['text']!r} gives "
                             "several (an ensemble): choose a single-sentence text set such as class-names")
    return [t[0] for t in texts]
