"""Decode and augment clips on the training device (``data.pipeline = "gpu"``).

DataLoader workers do the cheap part: list the clip's folder (cached), read the JPEG
bytes of the distinct sampled frames, read the frame size from the JPEG header and draw
the clip's augmentation parameters with the same ``rng`` calls as
:class:`~dferbench.data.transforms.ClipTransform`. The training process then decodes
every frame of the batch in one ``torchvision.io.decode_jpeg(..., device="cuda")`` call
(nvJPEG) and applies each clip's parameters with torch ops on the device: the PIL-exact
nearest-neighbour rotation as a gather, the crop as a view, brightness as
``floor(x * f)``, the antialiased bilinear resize, the flip, the scaling to [0, 1].

Pixels agree with the CPU pipeline to within a grey level or two (nvJPEG's IDCT and
chroma upsampling differ slightly from libjpeg-turbo's; the resize runs in float and is
rounded, where the CPU resizes in uint8). Frames that are not JPEG (PNG folders, video
files, synthetic or packed readers) are decoded by the workers and shipped as uint8,
four times smaller than the float clips of the CPU pipeline, and augmented on the device.

Everything here also runs with ``device="cpu"`` (torchvision's CPU decoder), which is how
the tests check it against the CPU pipeline.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dferbench.data.readers import AutoReader, BadClipError, FrameFolderReader, is_video_file
from dferbench.data.records import ClipRecord
from dferbench.data.transforms import CLIP_MEAN, CLIP_STD, ClipParams, ClipTransform, _pil_rotation_source_index

JPEG_MAGIC = b"\xff\xd8\xff"


class RawClip:
    """One clip as a worker hands it over: encoded (``jpegs``) or decoded (``frames``)
    distinct frames, ``order`` (which distinct frame each of the T positions shows) and
    the clip's augmentation ``params``."""

    __slots__ = ("jpegs", "frames", "order", "params")

    def __init__(self, *, order: torch.Tensor, params: ClipParams, jpegs: list[torch.Tensor] | None = None,
                 frames: torch.Tensor | None = None):
        self.jpegs, self.frames, self.order, self.params = jpegs, frames, order, params

    def pin_memory(self) -> RawClip:  # called by DataLoader(pin_memory=True)
        if self.frames is not None:
            self.frames = self.frames.pin_memory()
        return self


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(height, width)`` from a JPEG header, without decoding."""
    try:
        import simplejpeg

        h, w, _, _ = simplejpeg.decode_jpeg_header(data)
        return int(h), int(w)
    except ImportError:  # pragma: no cover
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.height, im.width


def _folder_reader(reader: Any, record: ClipRecord) -> FrameFolderReader | None:
    if isinstance(reader, FrameFolderReader):
        return reader
    if isinstance(reader, AutoReader) and not is_video_file(record.source):
        return reader.frames
    return None


def read_raw_clip(reader: Any, record: ClipRecord, indices: Sequence[int], transform: ClipTransform,
                  rng: np.random.Generator) -> RawClip:
    """What a worker hands over for one clip (see the module docstring)."""
    indices = [int(i) for i in indices]
    distinct = sorted(set(indices))
    position = {f: k for k, f in enumerate(distinct)}
    order = torch.tensor([position[i] for i in indices], dtype=torch.int64)
    folder = _folder_reader(reader, record)
    if folder is not None:
        names = folder.frame_names(record)
        if distinct and distinct[-1] >= len(names):
            raise BadClipError(record.clip_id, record.source,
                               f"frame index {distinct[-1]} out of range: the folder has {len(names)} frames "
                               f"but the record says {record.n_frames}; the files changed since the dataset was built")
        datas = []
        for i in distinct:
            path = Path(record.source) / names[i]
            try:
                datas.append(path.read_bytes())
            except OSError as exc:
                raise BadClipError(record.clip_id, path, f"cannot read frame ({exc.strerror})") from None
        if all(d[:3] == JPEG_MAGIC for d in datas):
            try:
                sizes = {jpeg_size(d) for d in datas}
            except Exception as exc:
                raise BadClipError(record.clip_id, record.source, f"corrupt JPEG header ({exc})") from None
            if len(sizes) == 1:
                (h, w), = sizes
                params = transform.sample_params(h, w, rng)
                return RawClip(order=order, params=params,
                               jpegs=[torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas])
    frames = reader(record, distinct)  # uint8 [K, H, W, 3], sizes already made equal
    params = transform.sample_params(frames.shape[1], frames.shape[2], rng)
    return RawClip(order=order, params=params, frames=torch.from_numpy(np.ascontiguousarray(frames)))


def apply_params(clip: torch.Tensor, params: ClipParams, transform: ClipTransform) -> torch.Tensor:
    """``uint8 [T, 3, H, W]`` on any device -> ``float32 [T, 3, S, S]``: ``ClipTransform.apply``
    with torch ops on the clip's device."""
    t, _, height, width = clip.shape
    if params.angle is not None and params.angle % 360.0 != 0.0:
        box = params.crop or (0, 0, height, width)
        index, outside = _pil_rotation_source_index(height, width, params.angle, box)
        index_t = torch.from_numpy(index).to(clip.device, non_blocking=True)
        flat = clip.reshape(t, 3, height * width).index_select(2, index_t)
        flat = flat.masked_fill(torch.from_numpy(outside).to(clip.device, non_blocking=True), 0)
        clip = flat.reshape(t, 3, box[2], box[3])
    elif params.crop is not None:
        top, left, h, w = params.crop
        clip = clip[:, :, top:top + h, left:left + w]
    x = clip.to(torch.float32)
    if params.brightness is not None:
        x = x.mul(params.brightness).floor_().clamp_(0, 255)
    size = transform.image_size
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255)  # the CPU pipeline resizes in uint8
    if params.flip:
        x = x.flip(-1)
    x = x.div_(255.0)
    if transform.normalize == "clip":
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        x = x.sub_(mean).div_(std)
    return x


def _same_size(frames: list[torch.Tensor]) -> torch.Tensor:
    """Stack ``[3, H, W]`` frames, resizing any that differ from the first (as the readers do)."""
    h, w = frames[0].shape[-2:]
    out = []
    for f in frames:
        if f.shape[-2:] != (h, w):
            f = F.interpolate(f[None].float(), size=(h, w), mode="bilinear", align_corners=False,
                              antialias=True)[0].round_().clamp_(0, 255).to(torch.uint8)
        out.append(f)
    return torch.stack(out)


def decode(jpegs: list[torch.Tensor], device: str | torch.device) -> list[torch.Tensor]:
    """Decode JPEG byte tensors to ``uint8 [3, H, W]`` RGB on ``device``, in one batch."""
    import warnings

    from torchvision.io import ImageReadMode, decode_jpeg

    if not jpegs:
        return []
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still
        # work, and the warning would repeat on every batch.
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)


def finish_batch(raws: list[RawClip], transform: ClipTransform, device: str | torch.device) -> torch.Tensor:
    """Decode and augment a batch of :class:`RawClip` on ``device`` -> ``float32 [B, T, 3, S, S]``."""
    flat = [j for r in raws if r.jpegs is not None for j in r.jpegs]
    decoded = decode(flat, device)
    clips = []
    k = 0
    for r in raws:
        if r.jpegs is not None:
            frames = _same_size(decoded[k:k + len(r.jpegs)])
            k += len(r.jpegs)
        else:
            frames = r.frames.to(device, non_blocking=True).permute(0, 3, 1, 2)
        clip = frames.index_select(0, r.order.to(frames.device))
        clips.append(apply_params(clip, r.params, transform))
    return torch.stack(clips)


@functools.lru_cache(maxsize=None)
def decode_available(device: str) -> bool:
    """Whether torchvision decodes JPEGs on ``device`` here (checked once per device)."""
    if os.environ.get("DFERBENCH_NO_GPU_DECODE"):
        return False
    try:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
        data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
        out = decode([data], device)
        return tuple(out[0].shape) == (3, 16, 16)
    except Exception:
        return False
