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
files, synthetic or packed readers) are decoded by the workers, shipped as uint8 and
augmented on the device. A batch travels from a worker as one :class:`RawBatch`.

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
from dferbench.data.transforms import ClipParams, ClipTransform, _pil_rotation_source_index, to_unit_float

JPEG_MAGIC = b"\xff\xd8\xff"


class RawClip:
    """One clip as a worker reads it: the encoded (``jpegs``) or decoded (``frames``,
    uint8 ``[K, H, W, 3]``) distinct frames, ``order`` (which distinct frame each of the T
    positions shows) and the clip's augmentation ``params``."""

    __slots__ = ("jpegs", "frames", "order", "params")

    def __init__(self, *, order: np.ndarray, params: ClipParams, jpegs: list[bytes] | None = None,
                 frames: torch.Tensor | None = None):
        self.jpegs, self.frames, self.order, self.params = jpegs, frames, order, params


class RawBatch:
    """The :class:`RawClip` of one batch as a worker hands them over, packed: the JPEG bytes
    of every clip in one uint8 tensor (``jpeg_data``, cut by ``jpeg_sizes``; clip ``c`` owns
    ``counts[c]`` consecutive JPEGs), the decoded frames of the other clips in another
    (``pixels``, cut by ``shapes``). A batch then crosses the process boundary as two
    shared-memory blocks instead of a file descriptor per frame, hundreds per batch, which
    exhausts the descriptors a process may receive once many workers prefetch deeply."""

    __slots__ = ("jpeg_data", "jpeg_sizes", "counts", "pixels", "shapes", "orders", "params")

    def __init__(self, clips: Sequence[RawClip]):
        jpegs = [j for c in clips if c.jpegs is not None for j in c.jpegs]
        decoded = [c.frames for c in clips if c.frames is not None]
        self.jpeg_sizes = [len(j) for j in jpegs]
        self.jpeg_data = torch.frombuffer(bytearray(b"".join(jpegs)), dtype=torch.uint8) if jpegs else None
        self.counts = [len(c.jpegs) if c.jpegs is not None else 0 for c in clips]
        self.shapes = [tuple(c.frames.shape) if c.frames is not None else None for c in clips]
        self.pixels = torch.cat([f.reshape(-1) for f in decoded]) if decoded else None
        self.orders = [c.order for c in clips]
        self.params = [c.params for c in clips]

    def __len__(self) -> int:
        return len(self.orders)

    def jpegs(self) -> list[torch.Tensor]:
        """Every JPEG of the batch, as views of ``jpeg_data``."""
        return list(self.jpeg_data.split(self.jpeg_sizes)) if self.jpeg_data is not None else []

    def frames(self, device: str | torch.device) -> list[torch.Tensor | None]:
        """Per clip: its decoded frames ``uint8 [K, 3, H, W]`` on ``device``, or None (JPEGs)."""
        if self.pixels is None:
            return [None] * len(self)
        pixels = self.pixels.to(device, non_blocking=True)
        out, start = [], 0
        for shape in self.shapes:
            if shape is None:
                out.append(None)
                continue
            size = int(np.prod(shape))
            out.append(pixels[start:start + size].view(shape).permute(0, 3, 1, 2))
            start += size
        return out

    def pin_memory(self) -> RawBatch:  # called by DataLoader(pin_memory=True)
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
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
    order = np.array([position[i] for i in indices], dtype=np.int64)
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
                return RawClip(order=order, params=params, jpegs=datas)
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
    return to_unit_float(x, transform.normalize)


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
    if torch.device(device).type == "cuda":
        # torchvision allocates the outputs on the current stream but nvJPEG writes them on
        # a stream of its own that does not wait for this one: a block freed by the previous
        # batch could be overwritten while kernels queued here still read it.
        torch.cuda.current_stream(device).synchronize()
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still
        # work, and the warning would repeat on every batch.
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)


def finish_batch(batch: RawBatch, transform: ClipTransform, device: str | torch.device) -> torch.Tensor:
    """Decode and augment a :class:`RawBatch` on ``device`` -> ``float32 [B, T, 3, S, S]``."""
    decoded = decode(batch.jpegs(), device)
    orders = torch.from_numpy(np.stack(batch.orders)).to(device)  # one copy, not one per clip
    clips = []
    k = 0
    for c, (count, frames, params) in enumerate(zip(batch.counts, batch.frames(device), batch.params)):
        if frames is None:
            frames = _same_size(decoded[k:k + count])
            k += count
        clips.append(apply_params(frames.index_select(0, orders[c]), params, transform))
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
