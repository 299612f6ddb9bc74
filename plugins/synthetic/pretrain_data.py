"""What the tiny CLIP is pre-trained and evaluated on: (rendered frame, caption) batches as pure
functions of ``(seed, step)``, and the held-out set (see :mod:`~dferbench_plugins.synthetic.pretrain`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

PRETRAIN_SEED_BASE = 2**40
"""Generator seeds of pre-training clips start here, far above any benchmark seed."""

_STREAM_BATCH, _STREAM_CAPTION, _STREAM_EVAL = 101, 102, 103
_MIN_FRAMES, _MAX_FRAMES = 10, 60


def pretrain_generator_seeds(seed: int) -> tuple[int, int]:
    """``(training, held-out)`` generator seeds of pre-training run ``seed``."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return PRETRAIN_SEED_BASE + 2 * seed, PRETRAIN_SEED_BASE + 2 * seed + 1


def _record(gen_seed: int, index: int, label: int, subject: int, n_frames: int):
    from dferbench import ClipRecord

    return ClipRecord(clip_id=f"s{subject:04d}_c{index:07d}", source=f"synthetic:{gen_seed}:{index}",
                      n_frames=n_frames, label=label, subject=f"s{subject:04d}")


def batch_specs(gen_seed: int, step: int, batch_size: int, n_identities: int,
                frames_per_clip: int = 2) -> list[tuple[Any, list[int]]]:
    """The ``(ClipRecord, frame indices)`` of training batch ``step``: ``batch_size /
    frames_per_clip`` fresh clips of any of the 11 classes and any identity, each at
    ``frames_per_clip`` independent uniformly random times (so onsets, offsets and
    neutral-ish frames are seen, not only apexes). ``_PairBatches`` may move the first
    ``apex_frames`` of them to the clip's apex.

    Two frames of one clip share identity, pose and lighting and differ in expression:
    hard negatives that teach the expression, and they halve the rendering cost.
    """
    from dferbench_plugins.synthetic.render import MAFW_CLASSES

    if batch_size % frames_per_clip:
        raise ValueError(f"batch_size {batch_size} is not a multiple of frames_per_clip {frames_per_clip}")
    n = batch_size // frames_per_clip
    r = np.random.default_rng([gen_seed, _STREAM_BATCH, step])
    labels = r.integers(len(MAFW_CLASSES), size=n)
    subjects = r.integers(n_identities, size=n)
    lengths = r.integers(_MIN_FRAMES, _MAX_FRAMES + 1, size=n)
    times = np.minimum((r.uniform(size=(n, frames_per_clip)) * lengths[:, None]).astype(np.int64),
                       lengths[:, None] - 1)
    return [(_record(gen_seed, step * n + j, int(labels[j]), int(subjects[j]), int(lengths[j])),
             [int(t) for t in times[j]]) for j in range(n)]


def _frames_to_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    from dferbench import build_clip_transform

    # The exact test-time input of the benchmark: CLIP-normalised pixels at the model's size.
    return build_clip_transform("none", size, normalize="clip", train=False)(frames, np.random.default_rng(0))


class _PairBatches(torch.utils.data.Dataset):
    """Item ``step`` is training batch ``step``: images, captions, active-action targets."""

    def __init__(self, gen_seed: int, batch_size: int, n_identities: int, frames_per_clip: int,
                 apex_frames: int, image_size: int, steps: int):
        self.gen_seed, self.batch_size, self.n_identities = gen_seed, batch_size, n_identities
        self.frames_per_clip, self.apex_frames = frames_per_clip, apex_frames
        self.image_size, self.steps = image_size, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
        from dferbench_plugins.synthetic.captions import ACTIVE, caption
        from dferbench_plugins.synthetic.render import AU_KEYS, apex_frame, clip_params, frame_state, render_frames

        rng = np.random.default_rng([self.gen_seed, _STREAM_CAPTION, step])
        frames, texts, targets = [], [], []
        for rec, times in batch_specs(self.gen_seed, step, self.batch_size, self.n_identities,
                                      self.frames_per_clip):
            p = clip_params(rec)
            if self.apex_frames:
                # Uniform times alone make strong, clearly visible actions rare (most frames
                # are onsets, offsets or faint), and the image tower learned them too slowly.
                times = [apex_frame(p)] * self.apex_frames + times[self.apex_frames:]
            frames.append(render_frames(p, times, self.image_size))
            for t in times:
                state = frame_state(p, t)
                texts.append(caption(state, rng))
                targets.append([float(state["au"][k] >= ACTIVE) for k in AU_KEYS])
        images = _frames_to_tensor(np.concatenate(frames), self.image_size)
        return images, texts, torch.tensor(targets, dtype=torch.float32)


def heldout_set(seed: int, image_size: int, clips_per_class: int = 16, frames_per_clip: int = 8) -> dict[str, Any]:
    """Clips of held-out pre-training identities (never seen in training), all 11 classes.

    Returns ``images [N*F,3,S,S]``, ``labels [N]``, ``apex [N]`` (frame position of each
    clip's apex among its ``F`` frames) and one ``(frame position, caption)`` per clip.
    """
    from dferbench_plugins.synthetic.captions import caption
    from dferbench_plugins.synthetic.render import MAFW_CLASSES, apex_frame, clip_params, frame_state, render_frames

    _, gen_seed = pretrain_generator_seeds(seed)
    r = np.random.default_rng([gen_seed, _STREAM_EVAL])
    frames, labels, apex, pairs = [], [], [], []
    n_subjects = max(4, len(MAFW_CLASSES) * clips_per_class // 4)
    for i in range(len(MAFW_CLASSES) * clips_per_class):
        label = i % len(MAFW_CLASSES)
        n = int(r.integers(16, _MAX_FRAMES + 1))
        p = clip_params(_record(gen_seed, i, label, int(r.integers(n_subjects)), n))
        idx = np.unique(np.linspace(0, n - 1, frames_per_clip).round().astype(int))
        idx = np.sort(np.unique(np.append(idx[: frames_per_clip - 1], apex_frame(p))))[:frames_per_clip]
        idx = np.pad(idx, (0, frames_per_clip - len(idx)), mode="edge")
        frames.append(render_frames(p, idx, image_size))
        labels.append(label)
        apex.append(int(np.flatnonzero(idx == apex_frame(p))[0]))
        k = int(r.integers(frames_per_clip))
        pairs.append((i * frames_per_clip + k, caption(frame_state(p, int(idx[k])), r)))
    return {"images": _frames_to_tensor(np.concatenate(frames), image_size),
            "labels": np.array(labels), "apex": np.array(apex), "frames_per_clip": frames_per_clip,
            "pairs": pairs}
