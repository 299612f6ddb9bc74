"""DFER-CLIP's segment sampling: which frame indices of a clip the model sees.

Training draws one random frame from each of ``num_frames`` equal segments; testing
takes each segment's middle frame. Clips with no more frames than segments use every
frame and repeat the last one ("edge" padding).
"""

from __future__ import annotations

import numpy as np


def segment_indices(
    n_frames: int, num_frames: int = 16, *, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Return ``num_frames`` 0-based frame indices into a clip of ``n_frames`` frames."""
    if n_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {n_frames}")
    if n_frames <= num_frames:
        return np.minimum(np.arange(num_frames), n_frames - 1)
    if not train:
        tick = n_frames / num_frames
        return np.array([int(tick / 2.0 + tick * i) for i in range(num_frames)])
    if rng is None:
        raise ValueError("training sampling needs a random generator")
    tick = n_frames // num_frames
    return np.arange(num_frames) * tick + rng.integers(tick, size=num_frames)
