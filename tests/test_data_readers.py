"""Frame-folder and video readers: order, partial decoding, caching, clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from dferbench.data import readers
from dferbench.testing import frame_image, truncate_file, write_frames, write_video
from dferbench.data.readers import (
    AutoReader,
    BadClipError,
    FrameFolderReader,
    VideoFileReader,
    count_frames,
    list_frames,
)
from dferbench.data.records import ClipRecord
from dferbench.errors import DferbenchError


def record(path, n=0, clip_id="c1") -> ClipRecord:
    return ClipRecord(clip_id, str(path), n, 0)


def close_to(frame: np.ndarray, seed: int, index: int, size: int = 32) -> bool:
    return np.abs(frame.astype(int) - frame_image(seed, index, size)).mean() < 15  # neighbours: > 20


def test_list_frames_natural_and_plain_order(tmp_path):
    names = ["10.jpg", "2.jpg", "1.jpg", "frame_3.JPG", "b.png", "a.jpeg"]
    write_frames(tmp_path, len(names), names=names, size=8)
    for junk in ("Thumbs.db", "notes.txt", ".hidden.jpg"):
        (tmp_path / junk).write_bytes(b"x")
    (tmp_path / "sub.jpg").write_bytes(b"")  # listed by name; decoding it would fail loudly
    natural = [p.name for p in list_frames(tmp_path)]
    assert natural == ["1.jpg", "2.jpg", "10.jpg", "a.jpeg", "b.png", "frame_3.JPG", "sub.jpg"]
    assert "Thumbs.db" not in natural and "notes.txt" not in natural and ".hidden.jpg" not in natural
    plain = [p.name for p in list_frames(tmp_path, order="plain")]
    assert plain == sorted(plain)  # the official glob + sort order
    assert plain.index("10.jpg") < plain.index("2.jpg")


def test_zero_padded_names_sort_the_same_either_way(tmp_path):
    write_frames(tmp_path, 12, size=8)  # 00001.jpg ... like DFEW/MAFW
    assert list_frames(tmp_path) == list_frames(tmp_path, order="plain")
    with pytest.raises(ValueError, match="natural, plain"):
        list_frames(tmp_path, order="random")


def test_reads_requested_frames_in_order_with_repeats(tmp_path, monkeypatch):
    write_frames(tmp_path / "clip", 20, seed=3)
    decoded = []
    real = readers._decode_image
    monkeypatch.setattr(readers, "_decode_image", lambda data, path: decoded.append(path.name) or real(data, path))
    reader = FrameFolderReader()
    out = reader(record(tmp_path / "clip", 20), [7, 2, 2, 19])
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
    assert all(close_to(f, 3, i) for f, i in zip(out, [7, 2, 2, 19]))
    assert sorted(decoded) == ["00003.jpg", "00008.jpg", "00020.jpg"]  # only what was asked, once


def test_listing_is_cached_per_clip_and_not_pickled(tmp_path, monkeypatch):
    write_frames(tmp_path / "clip", 5)
    calls = []
    real = readers.list_frames
    monkeypatch.setattr(readers, "list_frames", lambda d, o="natural": calls.append(d) or real(d, o))
    reader = FrameFolderReader()
    rec = record(tmp_path / "clip", 5)
    reader(rec, [0])
    reader(rec, [1, 4])
    assert len(calls) == 1
    copy = pickle.loads(pickle.dumps(reader))
    assert copy.order == "natural" and not copy._listings.data
    assert np.array_equal(copy(rec, [1, 4]), reader(rec, [1, 4]))


def test_png_and_grayscale_frames_become_rgb(tmp_path):
    write_frames(tmp_path / "clip", 2, names=["1.png", "2.png"], size=16)
    Image.fromarray(np.full((16, 16), 77, np.uint8)).save(tmp_path / "clip" / "3.jpg")
    out = FrameFolderReader()(record(tmp_path / "clip"), [0, 2])
    assert out.shape == (2, 16, 16, 3)
    assert np.array_equal(out[0], frame_image(0, 0, 16))  # PNG is lossless
    assert abs(int(out[1].mean()) - 77) <= 1


def test_frames_of_different_sizes_are_stacked(tmp_path):
    write_frames(tmp_path / "clip", 1, size=32)
    Image.fromarray(frame_image(0, 1, 20)).save(tmp_path / "clip" / "00002.jpg")
    assert FrameFolderReader()(record(tmp_path / "clip"), [0, 1]).shape == (2, 32, 32, 3)


def test_truncated_jpeg_names_clip_and_file(tmp_path):
    paths = write_frames(tmp_path / "clip", 4)
    truncate_file(paths[2], 0.4)
    reader = FrameFolderReader()
    reader(record(tmp_path / "clip"), [0, 1, 3])  # the bad frame is not needed
    with pytest.raises(BadClipError, match=r"clip 'c1': .*00003\.jpg: corrupt or truncated") as info:
        reader(record(tmp_path / "clip"), [2])
    assert info.value.clip_id == "c1" and info.value.path.endswith("00003.jpg")
    assert isinstance(info.value, DferbenchError)


def test_missing_empty_and_out_of_range(tmp_path):
    reader = FrameFolderReader()
    with pytest.raises(BadClipError, match="frame folder not found"):
        reader(record(tmp_path / "nope"), [0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadClipError, match="no .jpg/.jpeg/.png frames"):
        reader(record(tmp_path / "empty"), [0])
    write_frames(tmp_path / "short", 3)
    with pytest.raises(BadClipError, match="out of range: the folder has 3 frames"):
        reader(record(tmp_path / "short", 5), [4])


def test_bad_clip_error_survives_pickling():
    err = pickle.loads(pickle.dumps(BadClipError("00042", "/x/1.jpg", "bad")))
    assert (err.clip_id, err.path, err.reason) == ("00042", "/x/1.jpg", "bad")
    assert str(err) == "clip '00042': /x/1.jpg: bad"


@pytest.mark.parametrize("ext,codec", [("mp4", "mpeg4"), ("avi", "mpeg4"), ("mkv", "libx264"), ("webm", "libvpx")])
def test_video_count_and_sparse_read_match_full_decode(tmp_path, ext, codec):
    path = write_video(tmp_path / f"v.{ext}", 45, gop=8, codec=codec)
    reader = VideoFileReader()
    assert reader.count_frames(path) == 45 == count_frames(path)
    rec = record(path, 45)
    full = reader(rec, range(45))
    wanted = [44, 3, 3, 20, 21, 37]
    assert np.array_equal(reader(rec, wanted), full[wanted])
    nearest = [int(np.argmin([np.abs(f.astype(int) - frame_image(0, i)).mean() for f in full])) for i in (5, 30)]
    assert nearest == [5, 30]  # frames come back in display order


def test_video_reader_seeks_instead_of_decoding_everything(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long.mp4", 120, gop=10)
    reader = VideoFileReader()
    seeks = []
    real_open = readers.VideoFileReader._open

    def spy_open(self, clip_id, p):
        container = real_open(self, clip_id, p)
        real_seek = container.seek

        class Spy:
            def __getattr__(self, name):
                return getattr(container, name)

            def seek(self, *a, **k):
                seeks.append(a[0])
                return real_seek(*a, **k)

        return Spy()

    monkeypatch.setattr(readers.VideoFileReader, "_open", spy_open)
    out = reader(record(path, 120), [5, 100])
    assert out.shape[0] == 2 and len(seeks) == 1


def test_corrupt_and_missing_videos(tmp_path):
    reader = VideoFileReader()
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"\x00" * 2000)
    with pytest.raises(BadClipError, match=r"garbage\.mp4: (cannot open video|corrupt video|video has no frames)"):
        reader.count_frames(bad, "g")
    with pytest.raises(BadClipError, match="video file not found"):
        reader(record(tmp_path / "none.mp4"), [0])
    cut = write_video(tmp_path / "cut.mp4", 60, gop=10)
    truncate_file(cut, 0.5)  # the moov atom is at the end: unreadable
    with pytest.raises(BadClipError, match="cut.mp4"):
        reader(record(cut, 60, "cut"), [0, 59])


def test_truncated_avi_is_a_bad_clip(tmp_path):
    path = write_video(tmp_path / "cut.avi", 60, gop=10)
    truncate_file(path, 0.5)
    reader = VideoFileReader()
    # Depending on where the cut falls FFmpeg refuses the file or finds fewer frames.
    with pytest.raises(BadClipError, match=r"cut\.avi: (cannot open video|.*out of range: the video has)"):
        reader(record(path, 60, "cut"), [59])


def test_video_reader_pickles_without_cache(tmp_path):
    path = write_video(tmp_path / "v.mp4", 10)
    reader = VideoFileReader()
    reader.count_frames(path)
    copy = pickle.loads(pickle.dumps(reader))
    assert not copy._indices.data
    assert copy(record(path, 10), [9]).shape == (1, 32, 32, 3)


def test_auto_reader_dispatches_on_source(tmp_path):
    write_frames(tmp_path / "frames", 3)
    write_video(tmp_path / "v.webm", 6, codec="libvpx")
    reader = pickle.loads(pickle.dumps(AutoReader()))
    assert reader(record(tmp_path / "frames"), [0, 2]).shape == (2, 32, 32, 3)
    assert reader(record(tmp_path / "v.webm"), [0, 5]).shape == (2, 32, 32, 3)


def test_packed_cache_reads_the_same_frames(tmp_path):
    from dferbench.data.packed import PackedReader, pack_clips

    write_frames(tmp_path / "clip", 6, size=16)
    rec = record(tmp_path / "clip", 6)
    assert pack_clips([rec], tmp_path / "cache") > 0
    assert pack_clips([rec], tmp_path / "cache") == 0  # already packed
    packed = pickle.loads(pickle.dumps(PackedReader(tmp_path / "cache")))
    assert np.array_equal(packed(rec, [5, 0, 0]), FrameFolderReader()(rec, [5, 0, 0]))
    other = ClipRecord("x", str(tmp_path / "clip") + "/", 6, 0)  # another key: falls back to decoding
    assert packed(other, [1]).shape == (1, 16, 16, 3)
    with pytest.raises(BadClipError, match="re-pack"):
        packed(record(tmp_path / "clip", 7), [0])
    pack_clips([rec], tmp_path / "small", size=8)
    assert PackedReader(tmp_path / "small")(rec, [0]).shape == (1, 8, 8, 3)


def test_benchmark_pipelines_do_identical_work(tmp_path):
    from click.testing import CliRunner

    from dferbench.tools.bench_data import benchmark_loading
    from dferbench.cli import cli

    rows = benchmark_loading(tmp_path, 2, 1, n_frames=18, augmentation="ferv39k", repeats=1)
    assert [r["pipeline"] for r in rows] == ["straightforward", "fast", "packed"]
    assert all(r["clips"] == 2 and r["clips_per_s"] > 0 for r in rows) and rows[0]["speedup"] == 1.0
    out = CliRunner().invoke(cli, ["bench", "data", "--clips", "2", "--root", str(tmp_path / "cli")]).output
    assert "| straightforward |" in out and "clips_per_s_per_worker" in out


def test_video_verify_decodes_everything(tmp_path):
    reader = VideoFileReader()
    assert reader.verify(write_video(tmp_path / "v.mkv", 14, codec="libx264")) == 14
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"\x1aE\xdf\xa3" + b"\x00" * 300)  # an EBML magic number and nothing else
    with pytest.raises(BadClipError, match="bad.webm"):
        reader.verify(bad)
