"""Test-time corruptions: severities, determinism, per-clip parameters, the reader wrapper, mCE."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from dferbench.data.corruptions import (
    CLEAN,
    CORRUPTIONS,
    SEVERITIES,
    CorruptedReader,
    corrupt_frames,
    corrupt_indices,
    mean_corruption_error,
    robustness_grid,
)
from dferbench.data.loader import ClipSet
from dferbench.data.records import ClipRecord
from dferbench.data.sampling import segment_indices
from dferbench_plugins.synthetic.render import make_synthetic_dataset
from dferbench.errors import DferbenchError

SPATIAL = [n for n, c in CORRUPTIONS.items() if c.acts_on == "frames"]
TEMPORAL = [n for n, c in CORRUPTIONS.items() if c.acts_on == "indices"]
RANDOM_SPATIAL = [n for n in SPATIAL if CORRUPTIONS[n].draws != "nothing"]


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_dataset(num_clips=35)


@pytest.fixture(scope="module")
def clips(synthetic) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(clip_id, test-time indices, frames)`` of 6 clips, 8 frames each, 64 px."""
    out = []
    for rec in synthetic.split(1, "test")[:6]:
        idx = segment_indices(rec.n_frames, 8, train=False)
        out.append((rec.clip_id, idx, synthetic.reader(rec, idx)))
    return out


def test_table() -> None:
    assert len(CORRUPTIONS) >= 13 and CLEAN not in CORRUPTIONS
    for name, c in CORRUPTIONS.items():
        assert c.name == name and len(c.levels) == len(SEVERITIES) == 5
        assert c.acts_on in ("frames", "indices") and c.draws in ("nothing", "per clip", "per frame")
    assert {"occlusion_eyes", "occlusion_mouth", "occlusion_random", "gaussian_blur", "gaussian_noise",
            "jpeg_compression", "brightness", "low_light", "contrast", "frame_drop", "temporal_jitter",
            "frame_rate", "crop_shift"} <= set(CORRUPTIONS)
    grid = robustness_grid()
    assert grid[0] == (CLEAN, 0) and len(grid) == 1 + 5 * len(CORRUPTIONS) == len(set(grid))
    assert robustness_grid(["contrast"]) == [(CLEAN, 0)] + [("contrast", s) for s in SEVERITIES]


@pytest.mark.parametrize("name,severity,message", [
    ("fog", 1, "unknown corruption 'fog'"),
    ("gausian_blur", 1, "Did you mean 'gaussian_blur'"),
    ("contrast", 6, "severity must be an integer 0..5"),
    ("contrast", -1, "severity must be an integer 0..5"),
    ("contrast", 1.5, "severity must be an integer 0..5"),
    (CLEAN, 2, "has only severity 0"),
])
def test_unknown_values_are_named(name: str, severity, message: str) -> None:
    with pytest.raises(DferbenchError, match=message) as err:
        CorruptedReader(lambda r, i: None, name, severity)
    if "unknown" in message:
        assert "clean" in str(err.value) and "frame_rate" in str(err.value)  # lists the valid names


def test_severity_zero_and_clean_are_the_identity(clips) -> None:
    _, idx, frames = clips[0]
    for name in CORRUPTIONS:
        assert corrupt_frames(frames, name, 0) is frames
        assert np.array_equal(corrupt_indices(idx, 100, name, 0), idx)
    assert corrupt_frames(frames, CLEAN, 0) is frames
    assert CorruptedReader(lambda r, i: frames, CLEAN, 0).fingerprint_tag == ""
    assert CorruptedReader(lambda r, i: frames, "contrast", 0).identity


@pytest.mark.parametrize("name", SPATIAL)
def test_spatial_keeps_shape_dtype_and_type(name: str, clips) -> None:
    _, idx, frames = clips[0]
    out = corrupt_frames(frames, name, 3, clip_id="c")
    assert isinstance(out, np.ndarray) and out.shape == frames.shape and out.dtype == np.uint8
    t = corrupt_frames(torch.from_numpy(frames), name, 3, clip_id="c")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.uint8
    assert np.array_equal(t.numpy(), out)
    odd = np.ascontiguousarray(np.repeat(frames[:2], 2, axis=2)[:, :50])  # [2, 50, 128, 3]
    assert corrupt_frames(odd, name, 5, clip_id="c").shape == odd.shape


def test_spatial_rejects_other_layouts(clips) -> None:
    _, _, frames = clips[0]
    with pytest.raises(DferbenchError, match=r"uint8 frames \[T, H, W, 3\]"):
        corrupt_frames(frames.astype(np.float32), "contrast", 1)
    with pytest.raises(DferbenchError, match="3 frame indices for 8 frames"):
        corrupt_frames(frames, "gaussian_noise", 1, indices=[0, 1, 2])


@pytest.mark.parametrize("name", SPATIAL)
def test_spatial_severity_is_monotone(name: str, clips) -> None:
    def amount(x: np.ndarray, y: np.ndarray) -> float:
        if name.startswith("occlusion"):  # the area hidden (occluder colours are random)
            return float((x != y).any(axis=-1).mean())
        return float(np.abs(x.astype(np.float64) - y).mean())

    change = []
    for severity in (0, *SEVERITIES):
        change.append(np.mean([amount(corrupt_frames(f, name, severity, clip_id=c, indices=i), f)
                               for c, i, f in clips]))
    assert change[0] == 0
    assert all(b > a for a, b in zip(change, change[1:])), change


@pytest.mark.parametrize("name", TEMPORAL)
def test_temporal_severity_is_monotone(name: str) -> None:
    lengths = np.random.default_rng(0).integers(10, 61, size=60)
    change = []
    for severity in (0, *SEVERITIES):
        moved = [np.abs(corrupt_indices(segment_indices(int(n), 16, train=False), int(n), name, severity,
                                        clip_id=f"c{k}") - segment_indices(int(n), 16, train=False)).mean()
                 for k, n in enumerate(lengths)]
        change.append(float(np.mean(moved)))
    assert change[0] == 0
    assert all(b > a for a, b in zip(change, change[1:])), change


@pytest.mark.parametrize("name", TEMPORAL)
@pytest.mark.parametrize("n_frames", [1, 3, 16, 17, 100])
def test_temporal_stays_in_the_clip(name: str, n_frames: int) -> None:
    idx = segment_indices(n_frames, 16, train=False)
    for severity in SEVERITIES:
        out = corrupt_indices(idx, n_frames, name, severity, clip_id="x")
        assert out.dtype == np.int64 and out.shape == idx.shape
        assert out.min() >= 0 and out.max() < n_frames


def test_temporal_semantics() -> None:
    idx = segment_indices(48, 16, train=False)
    drop = corrupt_indices(idx, 48, "frame_drop", 5, clip_id="a")
    assert drop[0] == idx[0] and set(drop) <= set(idx) and np.all(np.diff(drop) >= 0)
    assert len(set(drop)) < len(idx)  # p = 0.7: some frames repeat the previous kept one
    slow = corrupt_indices(np.arange(48), 48, "frame_rate", 3, clip_id="a")  # 1/4 of the frame rate
    assert len(set(slow % 4)) == 1 and np.all(slow <= np.maximum(np.arange(48), slow.min()))
    assert len(set(slow)) == 12
    jitter = corrupt_indices(idx, 48, "temporal_jitter", 1, clip_id="a")
    assert np.abs(jitter - idx).max() <= 2  # half a segment of 3 frames, rounded


@pytest.mark.parametrize("name", RANDOM_SPATIAL + TEMPORAL)
def test_deterministic_per_seed_and_clip(name: str, clips) -> None:
    _, idx, frames = clips[0]

    def run(seed: int, clip_id: str) -> np.ndarray:
        if name in TEMPORAL:
            return corrupt_indices(idx, 200, name, 4, seed=seed, clip_id=clip_id)
        return corrupt_frames(frames, name, 4, seed=seed, clip_id=clip_id, indices=idx)

    assert np.array_equal(run(0, "a"), run(0, "a"))
    # (a frame rate's phase has only a few values: some pairs of clips share it)
    assert len({run(0, c).tobytes() for c in "abcde"}) > 1
    assert len({run(seed, "a").tobytes() for seed in range(5)}) > 1


@pytest.mark.parametrize("name", [n for n in SPATIAL if CORRUPTIONS[n].draws != "per frame"])
def test_per_clip_corruptions_treat_every_frame_alike(name: str, clips) -> None:
    _, _, frames = clips[0]
    still = np.repeat(frames[3:4], 5, axis=0)  # a clip of one repeated frame
    out = corrupt_frames(still, name, 4, clip_id="z")
    assert all(np.array_equal(out[0], f) for f in out[1:])


def test_noise_is_per_frame_and_keyed_by_the_source_index(clips) -> None:
    _, _, frames = clips[0]
    still = np.repeat(frames[3:4], 3, axis=0)
    out = corrupt_frames(still, "gaussian_noise", 2, clip_id="z", indices=[4, 9, 4])
    assert not np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    alone = corrupt_frames(still[:1], "gaussian_noise", 2, clip_id="z", indices=[9])
    assert np.array_equal(alone[0], out[1])


def test_sizes_interpolate_between_the_imagenet_c_tables() -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(1, 64, 64, 3), dtype=np.uint8)
    big = rng.integers(0, 256, size=(1, 224, 224, 3), dtype=np.uint8)
    mid = rng.integers(0, 256, size=(1, 120, 120, 3), dtype=np.uint8)

    def noise_sd(x: np.ndarray) -> float:  # severity 1 hardly clips at mid-grey
        grey = np.full_like(x, 128)
        return float((corrupt_frames(grey, "gaussian_noise", 1).astype(np.float64) - 128).std() / 255)

    assert noise_sd(small) == pytest.approx(0.04, rel=0.05)
    assert noise_sd(big) == pytest.approx(0.08, rel=0.05)
    assert noise_sd(mid) == pytest.approx(0.04 + 0.04 * np.log(120 / 64) / np.log(224 / 64), rel=0.05)


class CountingReader:
    """Records what it is asked for (per process)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, record: ClipRecord, indices):
        self.calls.append([int(i) for i in indices])
        return self.inner(record, indices)


def test_reader_reads_corrupted_indices_then_corrupts_frames(synthetic) -> None:
    rec = synthetic.split(1, "test")[0]
    idx = segment_indices(rec.n_frames, 16, train=False)
    inner = CountingReader(synthetic.reader)
    moved = corrupt_indices(idx, rec.n_frames, "frame_rate", 4, seed=3, clip_id=rec.clip_id)
    out = CorruptedReader(inner, "frame_rate", 4, seed=3)(rec, idx)
    assert inner.calls == [moved.tolist()] and np.array_equal(out, synthetic.reader(rec, moved))
    blurred = CorruptedReader(synthetic.reader, "gaussian_blur", 2)(rec, idx)
    assert np.array_equal(blurred, corrupt_frames(synthetic.reader(rec, idx), "gaussian_blur", 2))


def test_clean_clipset_gives_the_plain_tensors(synthetic) -> None:
    records = synthetic.split(1, "test")[:4]
    plain = ClipSet("synthetic", records, synthetic.reader, num_frames=8, image_size=32, normalize="clip",
                    pipeline="cpu")
    clean = ClipSet("synthetic", records, CorruptedReader(synthetic.reader, CLEAN, 0), num_frames=8,
                    image_size=32, normalize="clip", pipeline="cpu")
    noisy = ClipSet("synthetic", records, CorruptedReader(synthetic.reader, "gaussian_noise", 1), num_frames=8,
                    image_size=32, normalize="clip", pipeline="cpu")
    (a, la, _), = plain.loader(train=False, batch_size=4)
    (b, lb, _), = clean.loader(train=False, batch_size=4)
    (c, _, _), = noisy.loader(train=False, batch_size=4)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    # the features cache must not hand clean features to a corrupted run
    assert plain.fingerprint() == clean.fingerprint() != noisy.fingerprint()
    assert noisy.fingerprint() != ClipSet("synthetic", records, CorruptedReader(synthetic.reader, "gaussian_noise", 2),
                                          num_frames=8, image_size=32, normalize="clip").fingerprint()


def test_wrapper_pickles_and_runs_in_two_workers(synthetic) -> None:
    reader = CorruptedReader(synthetic.reader, "temporal_jitter", 3, seed=7)
    assert pickle.loads(pickle.dumps(reader)) == reader
    records = synthetic.split(2, "test")[:4]
    kwargs = dict(num_frames=8, image_size=32, pipeline="cpu")
    for name in ("temporal_jitter", "occlusion_random"):
        reader = CorruptedReader(synthetic.reader, name, 3, seed=7)
        here = torch.cat([v for v, _, _ in ClipSet("s", records, reader, workers=0, **kwargs)
                          .loader(train=False, batch_size=2)])
        there = torch.cat([v for v, _, _ in ClipSet("s", records, reader, workers=2, **kwargs)
                           .loader(train=False, batch_size=2)])
        assert torch.equal(here, there)


def _rows(clean: float, table: dict[str, list[float]], metric: str = "uar") -> list[dict]:
    rows = [{"corruption": CLEAN, "severity": 0, metric: clean}]
    rows += [{"corruption": n, "severity": s, metric: v} for n, vals in table.items()
             for s, v in zip(SEVERITIES, vals)]
    return rows


def test_mean_corruption_error() -> None:
    model = _rows(80.0, {"blur": [70, 60, 50, 40, 30], "noise": [80, 80, 80, 80, 80]})
    got = mean_corruption_error(model)
    assert got["clean_error"] == 20.0 and not got["normalised"]
    assert got["ce"] == {"blur": 50.0, "noise": 20.0} and got["mce"] == 35.0
    assert got["relative_ce"] == {"blur": 30.0, "noise": 0.0} and got["relative_mce"] == 15.0

    base = _rows(60.0, {"blur": [50, 40, 30, 20, 10], "noise": [50, 50, 50, 50, 50]})
    got = mean_corruption_error(model, baseline=base)
    assert got["normalised"]
    assert got["ce"]["blur"] == pytest.approx(100 * 250 / 350) and got["ce"]["noise"] == pytest.approx(40.0)
    assert got["relative_ce"]["blur"] == pytest.approx(100 * 150 / 150)
    assert got["relative_ce"]["noise"] == pytest.approx(0.0)  # 0 of the baseline's 50
    assert got["mce"] == pytest.approx((100 * 250 / 350 + 40) / 2)

    # folds of one cell are averaged; WAR is read when asked
    folds = _rows(80.0, {"blur": [70, 60, 50, 40, 30]}, "war") + _rows(60.0, {"blur": [50, 40, 30, 20, 10]}, "war")
    got = mean_corruption_error(folds, metric="war")
    assert got["clean_error"] == 30.0 and got["ce"]["blur"] == 60.0


def test_mean_corruption_error_names_what_is_missing() -> None:
    rows = _rows(80.0, {"blur": [70, 60, 50, 40, 30]})
    with pytest.raises(DferbenchError, match="no clean row"):
        mean_corruption_error(rows[1:])
    with pytest.raises(DferbenchError, match=r"'blur' lacks severities \[5\]"):
        mean_corruption_error(rows[:-1])
    with pytest.raises(DferbenchError, match="numeric 'war'"):
        mean_corruption_error(rows, metric="war")
    with pytest.raises(DferbenchError, match=r"baseline has no rows for \['blur'\]"):
        mean_corruption_error(rows, baseline=_rows(50.0, {"noise": [1, 2, 3, 4, 5]}))
    with pytest.raises(DferbenchError, match="only the clean one"):
        mean_corruption_error(rows[:1])


def test_blur_is_torchvisions_gaussian_blur() -> None:
    from torchvision.transforms.v2 import functional as TF

    frames = np.random.default_rng(1).integers(0, 256, size=(2, 100, 100, 3), dtype=np.uint8)
    for severity in (1, 5):
        ours = torch.from_numpy(corrupt_frames(frames, "gaussian_blur", severity)).permute(0, 3, 1, 2)
        level = CORRUPTIONS["gaussian_blur"].levels[severity - 1]
        t = np.log(100 / 64) / np.log(224 / 64)
        s = level[0] + t * (level[1] - level[0])
        k = 2 * int(np.ceil(4 * s)) + 1
        theirs = TF.gaussian_blur(torch.from_numpy(frames).permute(0, 3, 1, 2), kernel_size=[k, k], sigma=[s, s])
        assert (ours.int() - theirs.int()).abs().max() <= 1
