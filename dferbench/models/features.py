"""Frozen CLIP features per clip, cached on disk.

Methods whose image encoder is frozen (zero-shot, linear probe, CoOp at test time) see
the same frames for every prompt variant, fold and seed. Per-frame features are cached
under a key made of the encoder's weights (a content hash), the clips, the frame
sampling, the resolution, the normalisation and the device type: change any of them and
the key changes.

``precision="fp64"`` runs the encoder in float64 and rounds its output to float32. The
float32 forward pass differs in its last bits between CPUs (other vector kernels sum in
another order, about 3e-6 on the tiny CLIP); the float64 one differs about 1e-16, which
rounding to float32 removes but for a value within 1e-16 of a rounding boundary, so other
machines get the same feature bits (tests/test_feature_cache.py checks other code paths).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from dferbench.data.loader import BatchPlan, ClipSet
from dferbench.errors import DferbenchError
from dferbench.files import replacing
from dferbench.run.progress import progress

encoder_calls = 0  # batches pushed through an image encoder; tests read it

FEATURE_DTYPES = {"fp32": torch.float32, "fp64": torch.float64}  # by feature_precision


def weights_digest(module: nn.Module) -> str:
    """A content hash of a module's parameters and buffers (names, shapes, values)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@torch.no_grad()
def encode_frames(visual: nn.Module, clips: ClipSet, *, batch_size: int, device: str,
                  enabled_progress: bool | None = None, precision: str = "fp32") -> np.ndarray:
    """Per-frame image features ``[N, T, D]`` (not normalised, float32), test-time
    sampling, computed in ``precision`` (``fp32`` or ``fp64``)."""
    global encoder_calls
    dtype = FEATURE_DTYPES[precision]
    if dtype == torch.float64 and torch.device(device).type == "mps":
        raise DferbenchError("Apple's mps device has no float64: set model.feature_precision=fp32 or run on cpu")
    visual.eval().to(device)
    if dtype != torch.float32:
        visual = copy.deepcopy(visual).to(dtype)  # the caller's encoder stays as it is
    out = []
    batches = clips.loader(train=False, batch_size=batch_size)
    for video, _, _ in progress(batches, desc="encode frames", total=len(batches), enabled=enabled_progress):
        b, t = video.shape[:2]
        feats = visual(video.flatten(0, 1).to(device, dtype))  # [B*T, D]
        encoder_calls += 1
        out.append(feats.float().reshape(b, t, -1).cpu().numpy())
    return np.concatenate(out)


def cached_frame_features(visual: nn.Module, clips: ClipSet, *, cache_dir: Path | None, batch_size: int,
                          device: str, weights_id: str | None = None,
                          enabled_progress: bool | None = None, precision: str = "fp32") -> np.ndarray:
    """:func:`encode_frames`, read from ``cache_dir`` when the same key was computed before."""
    encode = dict(batch_size=batch_size, device=device, enabled_progress=enabled_progress, precision=precision)
    if cache_dir is None:
        return encode_frames(visual, clips, **encode)
    # The device type: a GPU computes fp32 convolutions in TF32 by default.
    key = f"{weights_id or weights_digest(visual)}-{clips.fingerprint()}-{torch.device(device).type}"
    if precision != "fp32":
        key += f"-{precision}"
    path = Path(cache_dir) / f"{key}.npy"
    if path.exists():
        return np.load(path)
    feats = encode_frames(visual, clips, **encode)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.save(f, feats)
    return feats


def video_features(frame_features: np.ndarray) -> np.ndarray:
    """Video features ``[N, D]``: the mean of the frame features, L2-normalised."""
    mean = frame_features.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True).clip(min=1e-12)


@dataclass
class FeatureSet:
    """Frozen per-clip features with the ``batches`` interface of a :class:`ClipSet`, so
    ``train_module`` / ``predict_module`` train and score on them unchanged (a frozen
    image encoder's features, encoded once, stand in for the clips).

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
