"""The DFER-CLIP authors' way of loading a clip, for comparisons (``data.pipeline = "reference"``).

What their ``VideoDataset.get`` does, per clip: ``glob`` + ``sort`` the frame folder, open
every sampled frame with PIL (a frame sampled twice is opened twice), apply each
transform frame by frame on PIL images (brightness through torchvision's
``adjust_brightness``, ``Image.rotate``, crop + bilinear resize, left-right transpose),
``np.concatenate`` the frames along channels, then permute to a float tensor in [0, 1].

The sampled indices and the augmentation parameters are the harness's (same
``rng``, same order of draws as :class:`~dferbench.data.transforms.ClipTransform`), so the
reference pipeline does exactly the work of the fast one and its pixels agree to within
a grey level or two (the fast path resizes in uint8 with torch, not PIL).
"""

from __future__ import annotations

import glob
import os
from typing import Any, Sequence

import numpy as np
import torch

from dferbench.data.records import ClipRecord
from dferbench.data.transforms import CLIP_MEAN, CLIP_STD, ClipParams, ClipTransform
from dferbench.errors import DferbenchError


def reference_clip(record: ClipRecord, indices: Sequence[int], transform: ClipTransform,
                   rng: np.random.Generator) -> torch.Tensor:
    """``float32 [T, 3, S, S]`` of ``record``'s frames at ``indices``, loaded the authors' way."""
    from PIL import Image

    if not os.path.isdir(record.source):
        raise DferbenchError(f"the reference pipeline reads frame folders only; clip {record.clip_id} "
                             f"has source {record.source!r}: use data.pipeline=cpu")
    paths = glob.glob(os.path.join(record.source, "*"))
    paths.sort()
    images = [Image.open(paths[int(i)]).convert("RGB") for i in indices]
    w, h = images[0].size
    p = transform.sample_params(h, w, rng)
    size = transform.image_size
    out = [transform_frame(im, p, size) for im in images]
    stacked = np.concatenate(out, axis=2)  # the authors' Stack(): [H, W, 3T]
    video = torch.from_numpy(stacked).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    video = video.reshape(-1, 3, size, size)
    if transform.normalize == "clip":
        video = (video - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return video


def transform_frame(im: Any, p: ClipParams, size: int) -> Any:
    """One PIL frame through the authors' transforms with the clip's parameters ``p``:
    brightness (torchvision's ``adjust_brightness``), ``Image.rotate``, crop, bilinear
    resize to ``size``, left-right transpose."""
    import torchvision.transforms.functional as F1
    from PIL import Image

    if p.brightness is not None:
        im = F1.adjust_brightness(im, p.brightness)
    if p.angle is not None:
        im = im.rotate(p.angle)
    if p.crop is not None:
        top, left, h, w = p.crop
        im = im.crop((left, top, left + w, top + h))
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    if p.flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    return im
