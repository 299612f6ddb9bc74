"""The synthetic benchmark: determinism, folds, the dynamics-only pair, reader, tree export."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dferbench.data.records import ClipRecord, DFERDataset
from dferbench_plugins.synthetic.render import (
    ACTION_UNITS,
    DFEW_CLASSES,
    MAFW_CLASSES,
    SyntheticReader,
    apex_frame,
    clip_params,
    frame_state,
    make_synthetic_dataset,
    render_frames,
    write_synthetic_tree,
)

REPO = Path(__file__).resolve().parents[1]


def all_records(ds: DFERDataset) -> list[ClipRecord]:
    return sorted({r.clip_id: r for f in ds.folds for s in ("train", "test") for r in ds.split(f, s)}.values(),
                  key=lambda r: r.clip_id)


@pytest.fixture(scope="module")
def ds7() -> DFERDataset:
    return make_synthetic_dataset()


@pytest.fixture(scope="module")
def ds11() -> DFERDataset:
    return make_synthetic_dataset(num_classes=11)


def test_class_orders() -> None:
    assert DFEW_CLASSES == ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    assert MAFW_CLASSES == DFEW_CLASSES + ["contempt", "anxiety", "helplessness", "disappointment"]


def test_dataset_metadata(ds7: DFERDataset, ds11: DFERDataset) -> None:
    assert (ds7.name, ds7.classes, ds7.folds) == ("synthetic", DFEW_CLASSES, [1, 2, 3, 4, 5])
    assert (ds11.name, ds11.classes) == ("synthetic-11", MAFW_CLASSES)
    assert ds7.augmentation == "none"
    recs = all_records(ds7)
    assert len(recs) == 400
    for r in recs:
        assert re.fullmatch(r"s\d{4}_c\d{4}", r.clip_id)
        assert r.subject == r.clip_id.split("_")[0]
        assert r.source.startswith("synthetic:")
        assert 10 <= r.n_frames <= 60


@pytest.mark.parametrize("bad", [0, 6, 8, 12])
def test_num_classes_must_be_7_or_11(bad: int) -> None:
    with pytest.raises(ValueError, match="7 .* or 11"):
        make_synthetic_dataset(num_classes=bad)


def test_too_few_clips_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 35"):
        make_synthetic_dataset(num_clips=20)


def test_same_seed_same_records_and_pixels(ds7: DFERDataset) -> None:
    again = make_synthetic_dataset()
    assert again.splits == ds7.splits
    for r in all_records(ds7)[:5]:
        idx = list(range(r.n_frames))
        np.testing.assert_array_equal(ds7.reader(r, idx), again.reader(r, idx))


def test_frames_do_not_depend_on_access_order(ds7: DFERDataset) -> None:
    r = all_records(ds7)[3]
    full = ds7.reader(r, range(r.n_frames))
    picked = [r.n_frames - 1, 0, 5, 5, 2]
    np.testing.assert_array_equal(ds7.reader(r, picked), full[picked])
    one = np.concatenate([ds7.reader(r, [i]) for i in range(r.n_frames)])
    np.testing.assert_array_equal(one, full)


def test_different_seed_differs(ds7: DFERDataset) -> None:
    other = make_synthetic_dataset(seed=1)
    assert other.splits != ds7.splits
    a, b = all_records(ds7)[0], all_records(other)[0]
    fa, fb = ds7.reader(a, [0, 1]), other.reader(b, [0, 1])
    assert not np.array_equal(fa, fb)


def test_pixels_identical_across_processes(ds7: DFERDataset) -> None:
    r = all_records(ds7)[7]
    here = hashlib.sha256(ds7.reader(r, range(r.n_frames)).tobytes()).hexdigest()
    code = (
        "import hashlib, pickle, sys\n"
        "reader, r = pickle.loads(sys.stdin.buffer.read())\n"
        "print(hashlib.sha256(reader(r, range(r.n_frames)).tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps((ds7.reader, r)),
                         capture_output=True, cwd=REPO, check=True)
    assert out.stdout.decode().strip() == here


def test_reader_is_picklable(ds7: DFERDataset) -> None:
    reader = pickle.loads(pickle.dumps(ds7.reader))
    assert isinstance(reader, SyntheticReader)
    r = all_records(ds7)[0]
    np.testing.assert_array_equal(reader(r, [0, 3]), ds7.reader(r, [0, 3]))


def test_reader_output_format() -> None:
    ds = make_synthetic_dataset(num_clips=35, image_size=48)
    r = all_records(ds)[0]
    frames = ds.reader(r, np.arange(4))
    assert frames.dtype == np.uint8 and frames.shape == (4, 48, 48, 3)
    assert ds.reader(r, []).shape == (0, 48, 48, 3)


@pytest.mark.parametrize("bad", [[-1], [0, 10_000], [0, None]])
def test_reader_rejects_out_of_range_indices(ds7: DFERDataset, bad: list) -> None:
    r = all_records(ds7)[0]
    bad = [r.n_frames if b is None else b for b in bad]
    with pytest.raises(ValueError, match=r.clip_id):
        ds7.reader(r, bad)


@pytest.mark.parametrize("num_classes", [7, 11])
def test_folds_are_subject_independent_and_cover_every_clip_once(num_classes: int) -> None:
    ds = make_synthetic_dataset(num_classes=num_classes)
    everything = {r.clip_id for r in all_records(ds)}
    tested: Counter[str] = Counter()
    for fold in ds.folds:
        train, test = ds.split(fold, "train"), ds.split(fold, "test")
        assert {r.subject for r in train}.isdisjoint({r.subject for r in test})
        assert {r.clip_id for r in train} | {r.clip_id for r in test} == everything
        assert len(train) + len(test) == len(everything)
        tested.update(r.clip_id for r in test)
        per_class = Counter(r.label for r in test)
        assert all(per_class[c] >= 2 for c in range(num_classes)), per_class
        assert 70 <= len(test) <= 90
    assert set(tested) == everything and set(tested.values()) == {1}


def test_class_imbalance_follows_the_real_sets(ds7: DFERDataset, ds11: DFERDataset) -> None:
    c7 = Counter(r.label for r in all_records(ds7))
    assert min(c7, key=c7.get) == DFEW_CLASSES.index("disgust")
    assert c7[2] > 5 * c7[5] and c7[0] > c7[4] > c7[6] > c7[5]  # neutral, happy >> disgust
    c11 = Counter(r.label for r in all_records(ds11))
    ref = np.array([993, 1176, 910, 1112, 857, 511, 500, 188, 732, 209, 145])
    got = np.array([c11[i] for i in range(11)])
    assert np.corrcoef(np.argsort(np.argsort(ref)), np.argsort(np.argsort(got)))[0, 1] > 0.9
    assert got[1] > 3 * got[10]


def test_some_clips_are_shorter_than_16_frames(ds7: DFERDataset) -> None:
    lengths = [r.n_frames for r in all_records(ds7)]
    assert 0.03 < np.mean(np.array(lengths) < 16) < 0.3
    assert max(lengths) > 50


def test_frame_state(ds11: DFERDataset) -> None:
    r = all_records(ds11)[0]
    p = clip_params(r)
    s = frame_state(p, 0)
    assert set(s["au"]) == set(ACTION_UNITS)
    assert all(0.0 <= v <= 1.0 for v in s["au"].values())
    assert set(s["pose"]) == {"yaw", "pitch", "roll", "dx", "dy", "scale"}
    assert s["lighting"]["direction"] in {"left", "right", "above", "below"}
    assert 0 <= apex_frame(p) < r.n_frames
    with pytest.raises(ValueError):
        frame_state(p, r.n_frames)


def test_the_expression_rises_to_an_apex(ds7: DFERDataset) -> None:
    rises = 0
    happy = [r for r in all_records(ds7) if r.label == 0][:20]
    for r in happy:
        p = clip_params(r)
        smile = [(lambda a: a["AU6"] + a["AU12"])(frame_state(p, t)["au"]) for t in range(r.n_frames)]
        rises += max(smile) > smile[0] + 0.1
    assert rises >= 15


def _frozen(params, label: int):
    """The clip's parameters as ``label`` with every frame-dependent nuisance switched off."""
    rec = ClipRecord("x", f"synthetic:{params.seed}:{params.index}", params.n_frames, label, params.subject)
    p = clip_params(rec)
    return dataclasses.replace(
        p, drift=tuple((0.0, 0.0, 0.0) for _ in p.drift), blinks=(), talk=(0.0, 0.0, 0.0),
        occlusion=None, noise=0.0)


def test_surprise_and_fear_differ_only_in_frame_order(ds7: DFERDataset) -> None:
    surprise = [r for r in all_records(ds7) if r.label == DFEW_CLASSES.index("surprise")][:3]
    for r in surprise:
        s = _frozen(clip_params(r), DFEW_CLASSES.index("surprise"))
        f = _frozen(s, DFEW_CLASSES.index("fear"))
        t = np.arange(r.n_frames)
        fs, ff = render_frames(s, t), render_frames(f, t)
        np.testing.assert_array_equal(ff, fs[::-1])  # same frames, reversed
        assert np.abs(fs.mean(0) - ff.mean(0)).max() < 1e-3
        assert np.abs(fs[:2].astype(float) - ff[:2]).mean() > 0.3  # the order differs

    # with all nuisances on, the clip-averaged frames still nearly agree
    for r in surprise:
        f = dataclasses.replace(r, label=DFEW_CLASSES.index("fear"))
        a = ds7.reader(r, range(r.n_frames)).astype(float)
        b = ds7.reader(f, range(r.n_frames)).astype(float)
        assert np.abs(a.mean(0) - b.mean(0)).mean() < 0.6 * np.abs(a - b).mean()


def test_surprise_and_fear_share_frame_statistics_not_dynamics() -> None:
    ds = make_synthetic_dataset(num_clips=1200, seed=5)
    stats: dict[int, list[tuple[float, float]]] = {4: [], 6: []}
    for r in all_records(ds):
        if r.label in stats:
            p = clip_params(r)
            t = np.arange(r.n_frames)
            lift = np.array([(lambda a: a["AU1"] + a["AU2"] + a["AU5"])(frame_state(p, i)["au"]) for i in t])
            slope = float(np.corrcoef(t, lift)[0, 1]) if lift.std() > 1e-6 else 0.0
            stats[r.label].append((float(lift.mean()), slope))
    s, f = np.array(stats[4]), np.array(stats[6])
    pooled = np.sqrt((s[:, 0].var() + f[:, 0].var()) / 2)
    assert abs(s[:, 0].mean() - f[:, 0].mean()) < 0.35 * pooled  # frame averages alike
    assert s[:, 1].mean() < -0.2 and f[:, 1].mean() > 0.2  # surprise fades, fear builds


def test_write_synthetic_tree_round_trip(tmp_path: Path) -> None:
    ds = make_synthetic_dataset(num_clips=14, num_folds=2, seed=3)
    root = write_synthetic_tree(ds, tmp_path / "tree")
    assert root == (tmp_path / "tree").resolve()
    recs = {r.clip_id: r for r in all_records(ds)}
    for rec in recs.values():
        frames = sorted((root / "frames" / rec.clip_id).iterdir())
        assert [p.name for p in frames] == [f"{i:05d}.jpg" for i in range(1, rec.n_frames + 1)]
    for fold in ds.folds:
        for split in ("train", "test"):
            text = (root / "annotations" / f"DFEW_set_{fold}_{split}.txt").read_text()
            assert not text.endswith("\n")
            lines = text.split("\n")
            assert len(lines) == len(ds.split(fold, split))
            for line, rec in zip(lines, ds.split(fold, split)):
                path, n, label = line.split(" ")
                assert Path(path).is_absolute() and Path(path).name == rec.clip_id
                assert (int(n), int(label)) == (rec.n_frames, rec.label)
    rec = next(iter(recs.values()))
    decoded = np.asarray(Image.open(root / "frames" / rec.clip_id / "00002.jpg").convert("RGB"), dtype=float)
    assert np.abs(decoded - ds.reader(rec, [1])[0]).mean() < 8.0


def test_write_synthetic_tree_uses_mafw_names_for_11_classes(tmp_path: Path) -> None:
    ds = make_synthetic_dataset(num_classes=11, num_clips=22, num_folds=2)
    ds.splits = {1: ds.splits[1]}  # one fold is enough here
    write_synthetic_tree(ds, tmp_path)
    assert sorted(p.name for p in (tmp_path / "annotations").iterdir()) == [
        "MAFW_set_1_test.txt", "MAFW_set_1_train.txt"]


def test_feature_windows_do_not_clip_features(monkeypatch: pytest.MonkeyPatch) -> None:
    from dferbench_plugins.synthetic import draw

    ds = make_synthetic_dataset(num_classes=11, num_clips=110, seed=4)
    recs = ds.split(1, "test")[:20]
    windowed = [ds.reader(r, range(0, r.n_frames, 3)) for r in recs]
    monkeypatch.setattr(draw._Canvas, "window", lambda self, cv, ru, rv: (slice(None),) * 3)
    for r, frames in zip(recs, windowed):
        np.testing.assert_array_equal(frames, ds.reader(r, range(0, r.n_frames, 3)))
