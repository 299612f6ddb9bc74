"""What ``predict`` needs from a trained model: a scorer.

A scorer turns clips of face frames into class probabilities. The pipeline hands it
clips already sampled (``num_frames`` per window) and already cropped to
``image_size``; whatever else the model needs (normalisation, a final resize) is the
scorer's business. :class:`ModuleScorer` does it the way evaluation does, so the same
frames give the same probabilities as ``dferbench evaluate``.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from dferbench.data.transforms import build_clip_transform, to_unit_float


@runtime_checkable
class Scorer(Protocol):
    """A trained model as ``predict`` sees it.

    Attributes:
        classes: class names, in the order of the probability columns.
        num_frames: frames the model reads per clip (``T``).
        image_size: side of the square frames it reads, pixels.
    """

    classes: list[str]
    num_frames: int
    image_size: int

    def score(self, clips: torch.Tensor) -> np.ndarray:
        """uint8 RGB clips ``[N, T, H, W, 3]`` -> probabilities ``[N, C]`` (rows sum to 1)."""
        ...


class ModuleScorer:
    """A :class:`Scorer` over a torch network ``video [B, T, 3, S, S] float -> logits [B, C]``.

    Each clip goes through the test transform of evaluation
    (:func:`~dferbench.data.transforms.build_clip_transform` with ``train=False``: a
    resize to ``image_size`` when the frames have another size), is scaled to [0, 1] on
    ``device`` and normalised with ``normalize`` (``"none"`` or ``"clip"``), then the
    network runs under the precision evaluation would use; probabilities are the
    softmax of the logits in float32.
    """

    def __init__(self, module: nn.Module, classes: Sequence[str], *, num_frames: int, image_size: int,
                 normalize: str = "none", device: str = "cpu", precision: str = "auto"):
        self.module = module.to(device).eval()
        self.classes = list(classes)
        self.num_frames = int(num_frames)
        self.image_size = int(image_size)
        self.normalize = normalize
        self.device = device
        self.precision = precision
        self.transform = build_clip_transform("none", self.image_size, normalize, train=False)

    def score(self, clips: torch.Tensor) -> np.ndarray:
        from dferbench.run.engine import autocast

        if clips.ndim != 5 or clips.shape[-1] != 3 or clips.dtype != torch.uint8:
            raise ValueError(f"expected uint8 clips [N, T, H, W, 3], got {clips.dtype} {tuple(clips.shape)}")
        rng = np.random.default_rng(0)  # the test transform draws nothing
        video = torch.stack([self.transform(clip, rng, uint8=True) for clip in clips])  # [N, T, 3, S, S] uint8
        video = to_unit_float(video.to(self.device), self.normalize)
        with torch.inference_mode(), autocast(self.device, self.precision):
            logits = self.module(video)
        if logits.shape[-1] != len(self.classes):
            raise ValueError(f"the network gives {logits.shape[-1]} logits per clip for {len(self.classes)} classes")
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()
