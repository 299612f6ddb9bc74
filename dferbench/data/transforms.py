"""Clip transforms: DFER-CLIP's per-dataset training augmentations and the test resize.

One set of random parameters is drawn per clip (from the caller's
``numpy.random.Generator``, never from a global RNG) and applied to every frame, as the
official ``Group*`` transforms do. The work happens once on the stacked clip tensor, in
uint8 until the final conversion, instead of frame by frame in PIL.

Faithfulness to the official code (zengqunzhao/DFER-CLIP, ``dataloader/video_transform.py``):

* brightness: factor ~ U(0.5, 1.5), pixels ``floor(x * factor)`` clipped to 255, which is
  exactly what PIL's ``ImageEnhance.Brightness`` (torchvision v1 on PIL) computes;
* rotation: angle ~ U(-4, 4) degrees counter-clockwise about the centre, nearest
  neighbour, black fill, same canvas: bit-exact with PIL ``Image.rotate``, whose 16.16
  fixed-point sampling grid is reproduced here;
* random resized crop: the official ``GroupRandomSizedCrop`` sampler (area U(0.08, 1),
  aspect U(3/4, 4/3) -- uniform, not log-uniform like torchvision's -- a coin flip that
  swaps width and height, 10 attempts, inclusive integer offsets), then a bilinear
  resize with PIL-style antialiasing. Its fallback (resize the short side, random
  square crop) is expressed as a square crop in source pixels: identical for square
  frames such as the 224x224 face crops, within a pixel of rounding otherwise;
* flip: p = 0.5 for the whole clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

AUGMENTATIONS: tuple[str, ...] = ("dfew", "ferv39k", "mafw", "none")
NORMALIZATIONS: tuple[str, ...] = ("none", "clip")

# OpenAI CLIP's preprocessing statistics.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

BRIGHTNESS = 0.5
ROTATION_DEGREES = 4.0
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)

# Which random steps each augmentation runs, in the official order.
_STEPS: dict[str, tuple[str, ...]] = {
    "dfew": ("brightness", "crop", "flip"),
    "ferv39k": ("rotate", "crop", "flip"),
    "mafw": ("crop", "flip"),
    "none": (),
}


@dataclass(frozen=True)
class ClipParams:
    """The random parameters of one clip; ``crop`` is ``(top, left, height, width)``."""

    brightness: float | None = None
    angle: float | None = None
    crop: tuple[int, int, int, int] | None = None
    flip: bool = False


def sample_crop(
    height: int, width: int, size: int, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """Draw a crop box ``(top, left, h, w)`` the way ``GroupRandomSizedCrop`` does."""
    area = height * width
    for _ in range(10):
        target_area = rng.uniform(*CROP_SCALE) * area
        aspect = rng.uniform(*CROP_RATIO)
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if rng.random() < 0.5:
            w, h = h, w
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return top, left, h, w
    # Fallback: short side to ``size``, then a random size x size crop, in source pixels.
    side = min(height, width)
    scale = side / size
    scaled_h, scaled_w = round(height / scale), round(width / scale)
    left = int(rng.integers(0, max(scaled_w - size, 0) + 1))
    top = int(rng.integers(0, max(scaled_h - size, 0) + 1))
    return (
        min(round(top * scale), height - side),
        min(round(left * scale), width - side),
        side,
        side,
    )


@dataclass(frozen=True)
class ClipTransform:
    """``frames uint8 [T,H,W,3]`` + rng -> ``float32 [T,3,S,S]`` in [0,1] (or CLIP-normalised).

    Plain data, so it pickles into DataLoader workers. ``sample_params`` and ``apply``
    are public so other pipelines (the loading benchmark, tests) can reuse the exact
    parameters of a clip.
    """

    augmentation: str
    image_size: int
    normalize: str = "none"
    train: bool = True

    def __post_init__(self) -> None:
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augmentation {self.augmentation!r}; valid: {', '.join(AUGMENTATIONS)}"
            )
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalize {self.normalize!r}; valid: {', '.join(NORMALIZATIONS)}"
            )
        if self.image_size < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")

    @property
    def steps(self) -> tuple[str, ...]:
        return _STEPS[self.augmentation] if self.train else ()

    def sample_params(self, height: int, width: int, rng: np.random.Generator) -> ClipParams:
        """Draw this clip's parameters, in the order the official transforms draw them."""
        brightness = angle = crop = None
        flip = False
        for step in self.steps:
            if step == "brightness":
                brightness = float(rng.uniform(max(0.0, 1 - BRIGHTNESS), 1 + BRIGHTNESS))
            elif step == "rotate":
                angle = float(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES))
            elif step == "crop":
                crop = sample_crop(height, width, self.image_size, rng)
            elif step == "flip":
                flip = bool(rng.random() < 0.5)
        return ClipParams(brightness=brightness, angle=angle, crop=crop, flip=flip)

    def apply(self, frames: np.ndarray | torch.Tensor, params: ClipParams) -> torch.Tensor:
        """Apply ``params`` to every frame of ``frames`` (uint8 ``[T,H,W,3]``) -> float."""
        return to_unit_float(self.apply_uint8(frames, params), self.normalize)

    def apply_uint8(self, frames: np.ndarray | torch.Tensor, params: ClipParams) -> torch.Tensor:
        """:meth:`apply` up to the float conversion: uint8 ``[T,3,S,S]``, 4x less to move
        between processes and to the GPU (finish with :func:`to_unit_float` there)."""
        clip = _as_uint8_clip(frames)  # [T,3,H,W] view with channels-last strides
        if params.angle is not None:
            clip = rotate_nearest(clip, params.angle, params.crop)
        elif params.crop is not None:
            top, left, h, w = params.crop
            clip = clip[:, :, top : top + h, left : left + w]
        if params.brightness is not None:
            # floor(x * f), clipped: bit-exact with PIL's ImageEnhance.Brightness.
            clip = clip.float().mul_(params.brightness).floor_().clamp_(0, 255).to(torch.uint8)
        size = self.image_size
        if clip.shape[-2:] != (size, size):
            # uint8 bilinear+antialias on channels-last is torch's fast path and matches
            # PIL's BILINEAR resize to within one grey level.
            clip = clip.contiguous(memory_format=torch.channels_last)
            clip = F.interpolate(
                clip, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        clip = clip.contiguous()
        if params.flip:
            clip = clip.flip(-1)
        return clip

    def __call__(self, frames: np.ndarray | torch.Tensor, rng: np.random.Generator, *,
                 uint8: bool = False) -> torch.Tensor:
        params = self.sample_params(frames.shape[1], frames.shape[2], rng)
        return self.apply_uint8(frames, params) if uint8 else self.apply(frames, params)


def to_unit_float(pixels: torch.Tensor, normalize: str) -> torch.Tensor:
    """Pixels in 0..255 (uint8 or float, any device, channels at dim -3) -> float32 in
    [0, 1], CLIP-normalised when ``normalize == "clip"``. A float input is changed in place."""
    out = pixels.to(torch.float32).div_(255.0)
    if normalize == "clip":
        mean = torch.tensor(CLIP_MEAN, dtype=out.dtype, device=out.device).view(3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=out.dtype, device=out.device).view(3, 1, 1)
        out.sub_(mean).div_(std)
    return out


def _pil_rotation_source_index(
    height: int, width: int, angle: float, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Flat source pixel of each pixel of ``box`` in PIL's ``rotate(angle)`` output, and a
    mask of the pixels that fall outside the source (black fill)."""
    # Mirrors Pillow: Image.rotate builds the inverse affine matrix (rounded to 15
    # digits) and ImagingTransformAffine samples it in 16.16 fixed point at pixel centres.
    theta = -math.radians(angle % 360.0)
    a, b = round(math.cos(theta), 15), round(math.sin(theta), 15)
    d, e = round(-math.sin(theta), 15), round(math.cos(theta), 15)
    cx, cy = width / 2.0, height / 2.0
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy

    def fix(v: float) -> int:
        return math.floor(v * 65536.0 + 0.5)

    top, left, h, w = box
    y = np.arange(top, top + h, dtype=np.int64)[:, None]
    x = np.arange(left, left + w, dtype=np.int64)[None, :]
    xi = (fix(c + a * 0.5 + b * 0.5) + y * fix(b) + x * fix(a)) >> 16
    yi = (fix(f + d * 0.5 + e * 0.5) + y * fix(e) + x * fix(d)) >> 16
    outside = (xi < 0) | (xi >= width) | (yi < 0) | (yi >= height)
    index = np.clip(yi, 0, height - 1) * width + np.clip(xi, 0, width - 1)
    return index.ravel(), outside.ravel()


def rotate_nearest(
    clip: torch.Tensor, angle: float, box: tuple[int, int, int, int] | None = None
) -> torch.Tensor:
    """Rotate every frame of a uint8 ``[T,3,H,W]`` clip like PIL ``Image.rotate(angle)``.

    With ``box = (top, left, h, w)`` only that region of the rotated frames is computed
    (rotation then crop, without the pixels the crop throws away).
    """
    t, _, height, width = clip.shape
    box = box or (0, 0, height, width)
    if angle % 360.0 == 0.0:
        top, left, h, w = box
        return clip[:, :, top : top + h, left : left + w]
    pixels = clip.permute(0, 2, 3, 1).contiguous().numpy()  # a view when it came from HWC
    index, outside = _pil_rotation_source_index(height, width, angle, box)
    # Gathering 3-byte pixels as one opaque item each is ~2x faster than a uint8 gather.
    rgb = pixels.view(np.dtype("V3")).reshape(t, height * width)
    out = np.take(rgb, index, axis=1).view(np.uint8).reshape(t, box[2] * box[3], 3)
    out[:, outside] = 0
    return torch.from_numpy(out.reshape(t, box[2], box[3], 3)).permute(0, 3, 1, 2)


def _as_uint8_clip(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"expected a clip of RGB frames shaped [T,H,W,3], got shape {tuple(frames.shape)}"
        )
    if frames.dtype not in (np.uint8, torch.uint8):
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    clip = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    return clip.permute(0, 3, 1, 2)


def build_clip_transform(
    augmentation: str, image_size: int, normalize: str = "none", train: bool = True
) -> ClipTransform:
    """Build the clip transform of a dataset's training augmentation, or the test resize.

    ``augmentation`` is ``dfew``, ``ferv39k``, ``mafw`` or ``none`` (``DFERDataset.augmentation``);
    with ``train=False`` every augmentation becomes a plain resize to ``image_size``.
    ``normalize="clip"`` applies CLIP's mean/std after scaling to [0, 1]; ``"none"`` (the
    official DFER-CLIP setting) leaves pixels in [0, 1].
    """
    return ClipTransform(
        augmentation=augmentation, image_size=int(image_size), normalize=normalize, train=train
    )
