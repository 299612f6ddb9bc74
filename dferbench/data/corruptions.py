"""Test-time corruptions of face clips, five severities each, for robustness evaluation.

A corruption changes the decoded clip before the clip transform (resize, normalisation):
*spatial* ones change the uint8 frames ``[T, H, W, 3]`` and keep their shape and dtype,
*temporal* ones change which frames are read (the sampler's indices, given the clip's
length). :class:`CorruptedReader` wraps a dataset's frame reader with one corruption at
one severity; severity 0 (or the corruption ``clean``) reads exactly what the reader does.

Severities follow ImageNet-C (Hendrycks & Dietterich, ICLR 2019) where it has the
corruption. Its code (``hendrycks/robustness``) has two tables: 224 px for ImageNet-C
(``ImageNet-C/imagenet_c/imagenet_c/corruptions.py``) and 64 px for Tiny ImageNet-C and
ImageNet-64x64-C (``ImageNet-C/create_c/make_tinyimagenet_c.py``), which agree. Face crops
come at 64 to 224 px, so:

* Gaussian noise, Gaussian blur and JPEG take both tables and interpolate between them,
  linearly in ``log(H)`` of the frame height, clamped outside 64..224 px (a 0.3 px blur,
  the 224 px sigma scaled down to 64 px, would change nothing; a small face also loses
  more to the same noise and codec, which is why ImageNet-C's authors lowered them);
* contrast and brightness are the same in both tables and taken unchanged;
* ``brightness`` is ImageNet-C's (HSV value plus ``c``, computed directly: colours scale
  with the value, black turns grey); ``low_light`` (underexposure by 0.5 to 3 stops:
  pixels times ``2^-stops``, floored) is added because face video fails more often in
  the dark than in glare;
* ``gaussian_blur`` uses torchvision's kernel (truncated at 4 sigma like ImageNet-C's
  ``skimage``, reflected at the borders) in two 1-D passes; ``low_light`` and ``contrast``
  are torchvision's ``adjust_brightness`` and ``adjust_contrast``. The latter blends each
  frame with its mean grey level, ImageNet-C with the per-channel means (colour casts
  survive there, not here);
* blur, contrast, brightness, low light and JPEG are fixed per severity, as in
  ImageNet-C; sensor noise is drawn per frame (keyed by the frame's index in the clip,
  so a frame read twice gets the same noise); occluders, crop errors and the temporal
  corruptions draw their parameters once per clip.

Corruptions ImageNet-C lacks, with their severity parameters:

* occlusion: a flat patch of one random colour per clip, the same in every frame.
  ``occlusion_eyes`` covers the eye band (centre at 35-45% of the frame height, where
  eyes sit in face crops), ``occlusion_mouth`` the mouth (centre at 70-80%),
  ``occlusion_random`` a square anywhere in the frame;
* ``crop_shift``: a face detector's box error. The face box is moved by a fraction of
  its side in a random direction and scaled by ``1 + s`` or ``1 / (1 + s)``; the window
  is cropped (outside the frame: edge pixels repeated) and resized back;
* ``frame_drop``: each frame the model would see is lost with probability ``p`` and
  replaced by the last frame kept before it (the first frame is always kept). Drops act
  on the sampled frames: on the source timeline a lost frame would be replaced by its
  near-identical neighbour and change nothing;
* ``temporal_jitter``: each sampled index moves by a uniform integer offset of up to
  ``a`` segment lengths (``n_frames / len(indices)``, at least one frame), clipped to the
  clip; order may break where offsets exceed half a segment;
* ``frame_rate``: the clip recorded at ``1/k`` of its frame rate: only every ``k``-th
  source frame exists (a random phase per clip), and each sampled index shows the latest
  existing frame at or before it (the earliest one before the first).

Randomness: every draw comes from a generator seeded with a BLAKE2 hash of
``(seed, clip_id, corruption, severity)`` (never Python's ``hash()``, which changes per
process), so results are identical in any process, worker or machine.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from dferbench.data.records import ClipRecord, FrameReader
from dferbench.errors import DferbenchError

__all__ = [
    "CLEAN",
    "VERSION",
    "CORRUPTIONS",
    "SEVERITIES",
    "Corruption",
    "CorruptedReader",
    "corrupt_frames",
    "corrupt_indices",
    "mean_corruption_error",
    "robustness_grid",
]

CLEAN = "clean"
"""The uncorrupted run's corruption name; its severity is 0."""

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

VERSION = 1
"""The version of the corruptions' computation. Robustness results hash it with their
cell's level, so a changed level reruns that cell; bump it whenever a corruption computes
something else for the same level (a fixed bug, another library call)."""

Frames = np.ndarray | torch.Tensor
# A spatial corruption: (uint8 frames [T, 3, H, W] tensor, its level, the clip's key, the
# frames' source indices) -> uint8 tensor of the same shape. A temporal one:
# (indices int64 [T], n_frames, level, the clip's key) -> indices.
SpatialFn = Callable[[torch.Tensor, Any, tuple[int, int], np.ndarray], torch.Tensor]
TemporalFn = Callable[[np.ndarray, int, Any, tuple[int, int]], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One row of :data:`CORRUPTIONS`.

    ``levels[s - 1]`` is the parameter of severity ``s``, described by ``parameter``;
    ``acts_on`` is ``"frames"`` (spatial) or ``"indices"`` (temporal); ``draws`` says what
    is random: ``"nothing"``, ``"per clip"`` or ``"per frame"``.
    """

    name: str
    acts_on: str
    parameter: str
    levels: tuple[Any, ...]
    draws: str
    source: str
    fn: Callable[..., Any]


def _key(seed: int, clip_id: str, name: str, severity: int) -> tuple[int, int]:
    """The seed of a clip's corruption generators: ``default_rng(key)`` draws per-clip
    parameters, ``default_rng([*key, frame index])`` per-frame noise."""
    digest = hashlib.blake2b(f"{seed}|{clip_id}|{name}|{severity}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


# --------------------------------------------------------------------------------------
# Spatial corruptions: uint8 [T, 3, H, W] tensors in, same out


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _at_size(level: tuple[float, float], height: int) -> float:
    """A ``(64 px, 224 px)`` pair of ImageNet-C parameters at frame ``height``."""
    t = min(max(math.log(height / 64.0) / math.log(224.0 / 64.0), 0.0), 1.0)
    return level[0] + t * (level[1] - level[0])


def _gaussian_noise(x: torch.Tensor, level: tuple[float, float], key: tuple[int, int],
                    frames: np.ndarray) -> torch.Tensor:
    _, c, h, w = x.shape
    sigma = _at_size(level, h)
    noise = np.stack([np.random.default_rng([*key, int(t)]).standard_normal((c, h, w), dtype=np.float32)
                      for t in frames])
    return _round_uint8(x.float() + torch.from_numpy(noise) * (sigma * 255.0))


def _gaussian_blur(x: torch.Tensor, level: tuple[float, float], key: tuple[int, int],
                   frames: np.ndarray) -> torch.Tensor:
    _, c, h, w = x.shape
    sigma = _at_size(level, h)
    # ImageNet-C (skimage) truncates at 4 sigma; reflect padding needs the kernel inside the frame
    half = min(math.ceil(4.0 * sigma), min(h, w) - 1)
    # torchvision's gaussian_blur convolves with the 2-D kernel (k^2 taps: a second per
    # 224 px clip at severity 5); the same kernel applied as two 1-D passes is k times cheaper
    taps = torch.exp(-0.5 * (torch.arange(-half, half + 1, dtype=torch.float32) / sigma) ** 2)
    taps /= taps.sum()
    row = taps.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous()
    y = F.pad(x.float(), (half, half, half, half), mode="reflect")
    y = F.conv2d(F.conv2d(y, row, groups=c), row.transpose(2, 3).contiguous(), groups=c)
    return _round_uint8(y)


def _jpeg(x: torch.Tensor, level: tuple[float, float], key: tuple[int, int], frames: np.ndarray) -> torch.Tensor:
    import simplejpeg

    quality = round(_at_size(level, x.shape[-2]))
    hwc = x.permute(0, 2, 3, 1).contiguous().numpy()
    out = [simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(f, quality=quality, colorspace="RGB",
                                                         colorsubsampling="420"), colorspace="RGB")
           for f in hwc]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def _brightness(x: torch.Tensor, c: float, key: tuple[int, int], frames: np.ndarray) -> torch.Tensor:
    rgb = x.float() / 255.0
    value = rgb.amax(dim=1, keepdim=True)
    lifted = (value + c).clamp_(max=1.0)
    out = torch.where(value > 0, rgb * (lifted / value.clamp(min=1e-12)), lifted)
    return _round_uint8(out * 255.0)


def _low_light(x: torch.Tensor, factor: float, key: tuple[int, int], frames: np.ndarray) -> torch.Tensor:
    return TF.adjust_brightness(x, brightness_factor=factor)


def _contrast(x: torch.Tensor, factor: float, key: tuple[int, int], frames: np.ndarray) -> torch.Tensor:
    return TF.adjust_contrast(x, contrast_factor=factor)


def _patch(x: torch.Tensor, box: tuple[float, float, float, float], colour: np.ndarray) -> torch.Tensor:
    """Fill the box ``(centre x, centre y, width, height)`` (fractions of the frame)."""
    h, w = x.shape[-2:]
    cx, cy, bw, bh = box
    x0, x1 = round((cx - bw / 2) * w), round((cx + bw / 2) * w)
    y0, y1 = round((cy - bh / 2) * h), round((cy + bh / 2) * h)
    out = x.clone()
    out[:, :, max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = torch.from_numpy(colour)[:, None, None]
    return out


def _band_occluder(band: tuple[float, float], centre_y: tuple[float, float]) -> SpatialFn:
    """An occluder over a horizontal band of the face: ``level = (width, height)``, fractions."""

    def occlude(x: torch.Tensor, level: tuple[float, float], key: tuple[int, int],
                frames: np.ndarray) -> torch.Tensor:
        bw, bh = level
        r = np.random.default_rng(key)
        lo, hi = band[0] + bw / 2, band[1] - bw / 2
        cx = float(r.uniform(lo, hi)) if hi > lo else (band[0] + band[1]) / 2
        cy = float(r.uniform(*centre_y))
        return _patch(x, (cx, cy, bw, bh), r.integers(0, 256, size=3, dtype=np.uint8))

    return occlude


def _random_occluder(x: torch.Tensor, area: float, key: tuple[int, int], frames: np.ndarray) -> torch.Tensor:
    side = math.sqrt(area)
    r = np.random.default_rng(key)
    cx, cy = r.uniform(side / 2, 1 - side / 2, size=2)
    return _patch(x, (float(cx), float(cy), side, side), r.integers(0, 256, size=3, dtype=np.uint8))


def _crop_shift(x: torch.Tensor, level: tuple[float, float], key: tuple[int, int],
                frames: np.ndarray) -> torch.Tensor:
    shift, grow = level
    r = np.random.default_rng(key)
    angle = r.uniform(0, 2 * math.pi)
    scale = 1.0 + grow if r.uniform() < 0.5 else 1.0 / (1.0 + grow)
    h, w = x.shape[-2:]
    bh, bw = max(1, round(h * scale)), max(1, round(w * scale))
    top = round(h / 2 + shift * h * math.sin(angle) - bh / 2)
    left = round(w / 2 + shift * w * math.cos(angle) - bw / 2)
    pad = max(0, -top, -left, top + bh - h, left + bw - w)
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="replicate") if pad else x.float()
    out = TF.resized_crop(padded, top + pad, left + pad, bh, bw, [h, w], antialias=True)
    return _round_uint8(out)


# --------------------------------------------------------------------------------------
# Temporal corruptions: indices int64 [T] in, same length out


def _frame_drop(idx: np.ndarray, n_frames: int, p: float, key: tuple[int, int]) -> np.ndarray:
    keep = np.random.default_rng(key).uniform(size=len(idx)) >= p
    if len(idx):
        keep[0] = True
    last_kept = np.maximum.accumulate(np.where(keep, np.arange(len(idx)), 0))
    return idx[last_kept]


def _temporal_jitter(idx: np.ndarray, n_frames: int, a: float, key: tuple[int, int]) -> np.ndarray:
    reach = a * max(1.0, n_frames / max(len(idx), 1))
    offsets = np.rint(np.random.default_rng(key).uniform(-reach, reach, size=len(idx))).astype(np.int64)
    return np.clip(idx + offsets, 0, n_frames - 1)


def _frame_rate(idx: np.ndarray, n_frames: int, k: int, key: tuple[int, int]) -> np.ndarray:
    phase = int(np.random.default_rng(key).integers(k)) % n_frames
    held = phase + (idx - phase) // k * k  # the latest existing frame at or before
    return np.where(idx < phase, phase, held)


def _spatial(name: str, parameter: str, levels: tuple[Any, ...], draws: str, source: str,
             fn: SpatialFn) -> Corruption:
    return Corruption(name, "frames", parameter, levels, draws, source, fn)


def _temporal(name: str, parameter: str, levels: tuple[Any, ...], source: str, fn: TemporalFn) -> Corruption:
    return Corruption(name, "indices", parameter, levels, "per clip", source, fn)


_IMAGENET_C = "ImageNet-C"
_BY_SIZE = "(at 64 px, at 224 px; log-linear between): "
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    _spatial("occlusion_eyes", "patch (width, height), fractions of the frame; centre y in 0.35-0.45",
             ((0.25, 0.10), (0.40, 0.12), (0.55, 0.14), (0.70, 0.16), (0.85, 0.18)), "per clip", "dferbench",
             _band_occluder(band=(0.075, 0.925), centre_y=(0.35, 0.45))),
    _spatial("occlusion_mouth", "patch (width, height), fractions of the frame; centre y in 0.70-0.80",
             ((0.20, 0.08), (0.30, 0.10), (0.40, 0.12), (0.50, 0.14), (0.60, 0.16)), "per clip", "dferbench",
             _band_occluder(band=(0.2, 0.8), centre_y=(0.70, 0.80))),
    _spatial("occlusion_random", "square patch area, fraction of the frame",
             (0.04, 0.08, 0.16, 0.24, 0.36), "per clip", "dferbench", _random_occluder),
    _spatial("gaussian_blur", _BY_SIZE + "sigma in px",
             ((0.5, 1.0), (0.75, 2.0), (1.0, 3.0), (1.25, 4.0), (1.5, 6.0)), "nothing", _IMAGENET_C, _gaussian_blur),
    _spatial("gaussian_noise", _BY_SIZE + "sigma, fraction of 255",
             ((0.04, 0.08), (0.08, 0.12), (0.12, 0.18), (0.15, 0.26), (0.18, 0.38)), "per frame", _IMAGENET_C,
             _gaussian_noise),
    _spatial("jpeg_compression", _BY_SIZE + "JPEG quality (4:2:0 chroma)",
             ((65, 25), (58, 18), (50, 15), (40, 10), (25, 7)), "nothing", _IMAGENET_C, _jpeg),
    _spatial("brightness", "HSV value + c", (0.1, 0.2, 0.3, 0.4, 0.5), "nothing", _IMAGENET_C, _brightness),
    _spatial("low_light", "exposure cut by 0.5, 1, 1.5, 2, 3 stops: brightness factor",
             tuple(round(2.0 ** -stops, 4) for stops in (0.5, 1.0, 1.5, 2.0, 3.0)), "nothing", "dferbench",
             _low_light),
    _spatial("contrast", "contrast factor (blend with the frame's mean grey)", (0.4, 0.3, 0.2, 0.1, 0.05),
             "nothing", _IMAGENET_C + ", torchvision's contrast", _contrast),
    _spatial("crop_shift", "face box (shift, scale change): shift a fraction of the side, scale x(1+s) or /(1+s)",
             ((0.05, 0.05), (0.10, 0.10), (0.15, 0.15), (0.20, 0.20), (0.25, 0.25)), "per clip", "dferbench",
             _crop_shift),
    _temporal("frame_drop", "probability that a sampled frame is lost", (0.1, 0.2, 0.35, 0.5, 0.7),
              "dferbench", _frame_drop),
    _temporal("temporal_jitter", "largest index offset, in segment lengths", (0.5, 1.0, 1.5, 2.0, 3.0),
              "dferbench", _temporal_jitter),
    _temporal("frame_rate", "frame rate divided by", (2, 3, 4, 6, 8), "dferbench", _frame_rate),
)}
"""Every corruption by name, in the order tables list them."""


def _lookup(name: str, severity: int) -> Corruption | None:
    """The corruption to apply, or None for the identity; raises for unknown values."""
    if name == CLEAN:
        if severity != 0:
            raise DferbenchError(f"corruption {CLEAN!r} has only severity 0, got {severity}")
        return None
    if name not in CORRUPTIONS:
        from dferbench.errors import unknown_name

        raise unknown_name("corruption", name, [CLEAN, *CORRUPTIONS])
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= 5:
        raise DferbenchError(f"corruption {name!r}: severity must be an integer 0..5 (0 = clean), got {severity!r}")
    return CORRUPTIONS[name] if severity else None


def robustness_grid(names: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """The ``(corruption, severity)`` cells of a robustness run: ``("clean", 0)`` first,
    then every severity of each corruption in ``names`` (default: all, table order)."""
    names = list(CORRUPTIONS) if names is None else list(names)
    for name in names:
        _lookup(name, 1 if name != CLEAN else 0)
    return [(CLEAN, 0)] + [(n, s) for n in names if n != CLEAN for s in SEVERITIES]


def corrupt_frames(frames: Frames, corruption: str, severity: int, *, seed: int = 0, clip_id: str = "",
                   indices: Sequence[int] | None = None) -> Frames:
    """Apply a spatial corruption to uint8 ``frames [T, H, W, 3]`` (numpy or torch).

    Returns the same type, shape and dtype; the input itself when there is nothing to do
    (severity 0, ``clean``, a temporal corruption). ``indices`` are the frames' positions
    in the source clip (default ``0..T-1``): per-frame noise is keyed by them.
    """
    c = _lookup(corruption, severity)
    if c is None or c.acts_on != "frames":
        return frames
    is_numpy = isinstance(frames, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(frames)) if is_numpy else frames
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise DferbenchError(f"clip {clip_id or '?'}: corruptions take uint8 frames [T, H, W, 3], "
                             f"got {x.dtype} {tuple(x.shape)}")
    idx = np.arange(len(x)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) != len(x):
        raise DferbenchError(f"clip {clip_id or '?'}: {len(idx)} frame indices for {len(x)} frames")
    out = c.fn(x.permute(0, 3, 1, 2), c.levels[severity - 1], _key(seed, clip_id, corruption, severity), idx)
    out = out.permute(0, 2, 3, 1).contiguous()
    return out.numpy() if is_numpy else out


def corrupt_indices(indices: Sequence[int], n_frames: int, corruption: str, severity: int, *, seed: int = 0,
                    clip_id: str = "") -> np.ndarray:
    """Apply a temporal corruption to 0-based frame ``indices`` of a clip of ``n_frames``.

    Returns int64 indices of the same length, all in ``0..n_frames - 1``; the indices
    unchanged (as int64) for severity 0, ``clean`` and spatial corruptions.
    """
    c = _lookup(corruption, severity)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if c is None or c.acts_on != "indices":
        return idx
    if n_frames < 1:
        raise DferbenchError(f"clip {clip_id or '?'}: needs at least one frame, got n_frames={n_frames}")
    return c.fn(idx, int(n_frames), c.levels[severity - 1], _key(seed, clip_id, corruption, severity))


@dataclass(frozen=True)
class CorruptedReader:
    """A frame reader that reads through ``reader`` with one corruption at one severity.

    ``reader(record, indices)`` is called with the temporally corrupted indices (using
    ``record.n_frames``) and its frames are spatially corrupted; parameters are drawn from
    ``(seed, record.clip_id, corruption, severity)``. Severity 0 and ``clean`` call
    ``reader`` unchanged. Picklable whenever ``reader`` is, so DataLoader workers can use it.
    """

    reader: FrameReader
    corruption: str
    severity: int
    seed: int = 0

    def __post_init__(self) -> None:
        _lookup(self.corruption, self.severity)

    @property
    def identity(self) -> bool:
        return _lookup(self.corruption, self.severity) is None

    @property
    def fingerprint_tag(self) -> str:
        """What sets these clips apart from the plain reader's ("" when nothing does)."""
        return "" if self.identity else f"{self.corruption}@{self.severity}#{self.seed}"

    def __call__(self, record: ClipRecord, indices: Sequence[int]) -> np.ndarray:
        if self.identity:
            return self.reader(record, indices)
        idx = corrupt_indices(indices, record.n_frames, self.corruption, self.severity, seed=self.seed,
                              clip_id=record.clip_id)
        frames = self.reader(record, idx)
        return corrupt_frames(np.asarray(frames), self.corruption, self.severity, seed=self.seed,
                              clip_id=record.clip_id, indices=idx)


# --------------------------------------------------------------------------------------
# Mean corruption error


def _errors(rows: Iterable[Mapping[str, Any]], metric: str, what: str) -> dict[tuple[str, int], float]:
    cells: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        try:
            cell = (str(row["corruption"]), int(row["severity"]))
            cells.setdefault(cell, []).append(100.0 - float(row[metric]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DferbenchError(f"{what}: every row needs 'corruption', 'severity' and a numeric {metric!r} "
                                 f"({exc!r} in {dict(row)})") from None
    if (CLEAN, 0) not in cells:
        raise DferbenchError(f"{what}: no clean row (corruption {CLEAN!r}, severity 0); run the clean cell too")
    for name in {c for c, _ in cells if c != CLEAN}:
        missing = [s for s in SEVERITIES if (name, s) not in cells]
        if missing:
            raise DferbenchError(f"{what}: corruption {name!r} lacks severities {missing}; "
                                 "the mean corruption error needs all five")
    return {cell: float(np.mean(v)) for cell, v in cells.items()}


def mean_corruption_error(rows: Iterable[Mapping[str, Any]], *, metric: str = "uar",
                          baseline: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The mean corruption error (mCE) of a robustness run, in the manner of ImageNet-C.

    ``rows`` are result records with ``corruption``, ``severity`` and ``metric`` (``uar``
    or ``war``, percent); rows of one cell (several folds or seeds) are averaged. The
    error is ``E = 100 - metric``. For each corruption ``c`` (clean row: ``E_clean``):

    * without ``baseline``: ``CE_c = mean_s E_{s,c}`` (ImageNet-C's sum over the five
      severities divided by five, so it reads as a percent error) and
      ``relative CE_c = mean_s (E_{s,c} - E_clean)``;
    * with ``baseline`` (rows of a reference model, ImageNet-C's AlexNet):
      ``CE_c = 100 * sum_s E_{s,c} / sum_s B_{s,c}`` and
      ``relative CE_c = 100 * sum_s (E_{s,c} - E_clean) / sum_s (B_{s,c} - B_clean)``
      (NaN where the baseline's sum is 0).

    ``mCE`` and ``relative mCE`` are the means over corruptions. Returns ``{"metric",
    "normalised", "clean_error", "ce": {c: ...}, "relative_ce": {c: ...}, "mce",
    "relative_mce"}``.
    """
    if metric not in ("uar", "war"):
        raise DferbenchError(f"mean corruption error: metric must be 'uar' or 'war', got {metric!r}")
    errors = _errors(rows, metric, "mean corruption error")
    names = [n for n in dict.fromkeys(c for c, _ in errors) if n != CLEAN]
    if not names:
        raise DferbenchError("mean corruption error: no corrupted rows, only the clean one")
    clean = errors[CLEAN, 0]
    base = _errors(baseline, metric, "mean corruption error baseline") if baseline is not None else None
    if base is not None:
        absent = [n for n in names if (n, 1) not in base]
        if absent:
            raise DferbenchError(f"mean corruption error: the baseline has no rows for {absent}")

    def ratio(num: float, den: float) -> float:
        return 100.0 * num / den if den else float("nan")

    ce, rel = {}, {}
    for n in names:
        e = np.array([errors[n, s] for s in SEVERITIES])
        if base is None:
            ce[n], rel[n] = float(e.mean()), float((e - clean).mean())
        else:
            b = np.array([base[n, s] for s in SEVERITIES])
            ce[n] = ratio(float(e.sum()), float(b.sum()))
            rel[n] = ratio(float((e - clean).sum()), float((b - base[CLEAN, 0]).sum()))
    return {"metric": metric, "normalised": base is not None, "clean_error": clean, "ce": ce,
            "relative_ce": rel, "mce": float(np.mean(list(ce.values()))),
            "relative_mce": float(np.mean(list(rel.values())))}
