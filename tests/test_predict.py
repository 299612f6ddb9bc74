"""predict on videos: real faces (scikit-image's astronaut portrait, animated), synthetic
clips through the `none` detector, windows, outputs and bad inputs. No downloads."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dferbench.data.loader import ClipSet
from dferbench.data.readers import VideoFileReader
from dferbench.data.records import ClipRecord
from dferbench.data.sampling import segment_indices
from dferbench_plugins.synthetic.render import DFEW_CLASSES, SyntheticReader, make_synthetic_dataset
from dferbench.errors import DferbenchError
from dferbench.predict.demo import ASTRONAUT_FACE, camera_path, pan_zoom, write_mp4
from dferbench.predict.detection import detect_faces, sampled_frames
from dferbench.predict.pipeline import predict_videos
from dferbench.predict.scorer import ModuleScorer
from dferbench.predict.tracking import Box, crop_square, crop_square_box, link_tracks, main_track, smooth_track
from dferbench.predict.video import expand_inputs, open_source
from dferbench.predict.windows import place_windows
from dferbench_plugins.faces import dferbench_register_face_detectors
from dferbench_plugins.faces.haar import HaarDetector
from dferbench_plugins.faces.mtcnn import INSTALL as MTCNN_INSTALL
from dferbench_plugins.faces.mtcnn import load_mtcnn_class
from dferbench_plugins.faces.whole_frame import WholeFrame

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the test extra) ships the astronaut portrait")

N_FRAMES, SIZE, FPS = 48, 160, 12.0  # a 4 s pan-and-zoom at 160 x 160


def astronaut_frames(n: int = N_FRAMES, size: int = SIZE) -> np.ndarray:
    return pan_zoom(skimage_data.astronaut(), n, size, focus=ASTRONAUT_FACE)


def face_centres(n: int = N_FRAMES, size: int = SIZE) -> np.ndarray:
    """Where the astronaut's face centre is in each frame of :func:`astronaut_frames`."""
    h, w = skimage_data.astronaut().shape[:2]
    fx, fy = ASTRONAUT_FACE[0] * w, ASTRONAUT_FACE[1] * h
    return np.array([((fx - x0) * size / side, (fy - y0) * size / side)
                     for x0, y0, side in camera_path(h, w, n, focus=ASTRONAUT_FACE)])


def inside(box: Box, point: np.ndarray) -> bool:
    return box.x0 <= point[0] <= box.x1 and box.y0 <= point[1] <= box.y1


@pytest.fixture(scope="module")
def astronaut_mp4(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("videos") / "astronaut.mp4"
    write_mp4(path, astronaut_frames(), FPS)
    return path


@pytest.fixture(scope="module")
def network():
    from dferbench.run.config import option_defaults
    from dferbench_plugins.dferclip import OPTIONS, build_network

    torch.manual_seed(0)
    options = dict(option_defaults(OPTIONS), clip_model="dferbench-tiny", pretrained="dferbench-synthetic")
    return build_network(list(DFEW_CLASSES), options, num_frames=8).eval()


@pytest.fixture(scope="module")
def scorer(network) -> ModuleScorer:
    # The synthetic preset of DFER-CLIP: 8 frames, 64 px, CLIP normalisation.
    return ModuleScorer(network, DFEW_CLASSES, num_frames=8, image_size=64, normalize="clip")


# --------------------------------------------------------------------------------------
# Faces: detection, tracks, crops


def test_haar_finds_the_astronaut_in_every_frame(astronaut_mp4):
    frames = open_source(astronaut_mp4).read(range(N_FRAMES))
    boxes = HaarDetector().detect(frames)
    centres = face_centres()
    hits = sum(any(inside(b, c) for b in frame_boxes) for frame_boxes, c in zip(boxes, centres))
    assert hits >= N_FRAMES - 1
    assert sum(len(b) for b in boxes) <= N_FRAMES + 2  # next to no false positives


def test_tracks_link_the_face_across_the_video(astronaut_mp4):
    source = open_source(astronaut_mp4)
    found = detect_faces(source, HaarDetector(), rate=5.0)
    assert list(found.frames) == list(sampled_frames(source.timestamps, 5.0))
    assert found.found >= len(found.frames) - 1
    tracks = link_tracks(found.boxes, list(found.frames), fps=source.fps)
    main = main_track(tracks)
    assert (main.first, main.last) == (0, N_FRAMES - 1)  # one track over the whole pan and zoom
    assert len(main.frames) >= len(found.frames) - 1
    boxes = smooth_track(main, source.timestamps)
    assert boxes.shape == (N_FRAMES, 4)
    centres = face_centres()
    assert all(inside(Box(*b), c) for b, c in zip(boxes, centres))


def test_the_square_crop_holds_the_face(astronaut_mp4):
    source = open_source(astronaut_mp4)
    found = detect_faces(source, HaarDetector(), rate=5.0)
    track = main_track(link_tracks(found.boxes, list(found.frames), fps=source.fps))
    boxes = smooth_track(track, source.timestamps)
    frames = source.read([0, 20, 47])
    crops = np.stack([crop_square(f, boxes[i], 128) for f, i in zip(frames, [0, 20, 47])])
    assert crops.shape == (3, 128, 128, 3)
    # The detector finds the face again in each crop, centred and filling most of it.
    for crop_boxes in HaarDetector().detect(crops):
        best = max(crop_boxes, key=lambda b: b.area)
        cx, cy = best.centre
        assert abs(cx - 64) < 16 and abs(cy - 64) < 20
        assert 0.5 * 128 < best.side < 128


def test_linking_keeps_faces_apart_and_picks_the_main_one():
    big = [Box(10 + 3 * k, 10, 70 + 3 * k, 70) for k in range(10)]  # moves right, 60 px
    small = [Box(200, 50 + 2 * k, 230, 80 + 2 * k) for k in range(10)]  # moves down, 30 px
    detections = [[big[k], small[k]] if k != 4 else [small[k]] for k in range(10)]  # big missed once
    detections[6].append(Box(120, 120, 125, 125))  # a one-off false positive
    tracks = link_tracks(detections, list(range(0, 30, 3)), fps=10.0)
    assert len(tracks) == 3
    main = main_track(tracks)
    assert main.boxes[0] == big[0] and len(main.frames) == 9  # carried across the missed frame
    assert sorted(len(t.frames) for t in tracks) == [1, 9, 10]
    # A gap longer than MAX_GAP_S (1 s) ends the track.
    split = link_tracks([[big[0]], [], [big[1]]], [0, 5, 20], fps=10.0)
    assert len(split) == 2


def test_smoothing_removes_jitter_and_keeps_motion():
    from dferbench.predict.tracking import Track

    rng = np.random.default_rng(0)
    fps, step, n = 25.0, 5, 1500  # 5 detections a second over 5 minutes
    frames = list(range(0, n * step, step))
    timestamps = np.arange(n * step) / fps
    x = 100 + 0.2 * np.asarray(frames)  # a steady pan: 40 px per second
    jitter = rng.normal(0, 3, n)
    track = Track(0, frames, [Box(a + j - 30, 50 + j, a + j + 30, 110 + j) for a, j in zip(x, jitter)])
    boxes = smooth_track(track, timestamps)
    assert boxes.shape == (frames[-1] + 1, 4)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    truth = 100 + 0.2 * np.arange(frames[-1] + 1)
    inner = slice(50, -50)  # away from the ends, where the Gaussian is one-sided
    assert np.abs(centre_x - truth)[inner].std() < 0.6 * jitter.std()
    assert abs(np.mean((centre_x - truth)[inner])) < 0.5  # no lag, no drift
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 60, atol=1e-6)


def test_crop_box_is_square_with_margin_and_stays_inside():
    assert crop_square_box((40, 40, 80, 90), 200, 200, margin=0.25) == (29, 34, 62)  # 1.25 x 50, centred on (60, 65)
    assert crop_square_box((0, 0, 40, 40), 200, 100, margin=0.5) == (0, 0, 60)  # moved inside the frame
    frame = np.full((50, 50, 3), 200, np.uint8)
    crop = crop_square(frame, (0, 0, 50, 50), 32, margin=1.0)  # 100 px square: padded black
    assert crop.shape == (32, 32, 3) and crop[0, 0].max() == 0 and crop[16, 16].min() == 200


@pytest.mark.skipif(not __import__("importlib").util.find_spec("facenet_pytorch"),
                    reason=f"MTCNN needs facenet-pytorch, not installed: {MTCNN_INSTALL}")
def test_mtcnn_finds_the_astronaut_and_survives_empty_frames(astronaut_mp4):
    from dferbench_plugins.faces.mtcnn import MTCNNDetector

    frames = open_source(astronaut_mp4).read(range(0, N_FRAMES, 4))
    grey = np.full_like(frames[:2], 128)
    boxes = MTCNNDetector().detect(np.concatenate([frames, grey]))  # numpy 2: object arrays, None for no face
    centres = face_centres()[::4]
    assert all(any(inside(b, c) for b in fb) for fb, c in zip(boxes[:len(frames)], centres))
    assert boxes[-2:] == [[], []]
    assert MTCNNDetector().detect(grey) == [[], []]


def test_mtcnn_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # import fails as if not installed
    with pytest.raises(DferbenchError) as info:
        load_mtcnn_class()
    assert MTCNN_INSTALL in str(info.value) and "\n" not in str(info.value)


def test_face_detectors_register_like_plugins():
    found = {}

    def register(name, factory, *, description=""):
        found[name] = (factory, description)

    dferbench_register_face_detectors(register)
    assert set(found) == {"haar", "mtcnn", "none"} and all(d for _, d in found.values())
    assert found["haar"][0](device="cpu").detect(np.zeros((1, 64, 64, 3), np.uint8)) == [[]]
    assert found["none"][0](device="cpu").detect(np.zeros((2, 30, 40, 3), np.uint8)) == [[Box(0, 0, 40, 30)]] * 2


# --------------------------------------------------------------------------------------
# Videos, timestamps, windows


def test_timestamps_and_windows_for_a_known_fps(astronaut_mp4):
    source = open_source(astronaut_mp4)
    assert (source.n_frames, source.fps, source.width, source.height) == (N_FRAMES, FPS, SIZE, SIZE)
    np.testing.assert_allclose(source.timestamps, np.arange(N_FRAMES) / FPS, atol=1e-6)
    assert source.duration_s == pytest.approx(4.0)

    windows = place_windows(source.timestamps, 8, fps=FPS, window_s=1.0, stride_s=0.5)
    assert [w.start_s for w in windows] == pytest.approx([0.5 * k for k in range(7)])
    for k, w in enumerate(windows):
        assert (w.first, w.last, w.end_s) == (6 * k, 6 * k + 11, pytest.approx(w.start_s + 1.0))
        np.testing.assert_array_equal(w.frames, 6 * k + segment_indices(12, 8, train=False))
    # The stride leaves a tail: one more window, aligned to the end.
    tail = place_windows(source.timestamps, 8, fps=FPS, window_s=1.5, stride_s=1.0)
    assert [w.start_s for w in tail] == pytest.approx([0.0, 1.0, 2.0, 2.5])
    assert tail[-1].last == N_FRAMES - 1
    whole = place_windows(source.timestamps, 8, fps=FPS, window_s=None, first=12, last=35)
    assert len(whole) == 1 and (whole[0].first, whole[0].last) == (12, 35)
    np.testing.assert_array_equal(whole[0].frames, 12 + segment_indices(24, 8, train=False))
    assert place_windows(source.timestamps, 8, fps=FPS, window_s=4.5) == []


def test_rotated_video_is_read_upright(tmp_path):
    import av

    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:16, :32] = 255  # white top-left quarter
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise, as a phone held sideways records
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = open_source(path)
    assert (source.width, source.height) == (32, 64)
    upright = source.read([0])[0].astype(int)
    expected = np.rot90(frame).astype(int)  # the white quarter is now bottom-left
    assert np.abs(upright - expected).mean() < 10


def test_expand_inputs(tmp_path, astronaut_mp4):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("b10.mp4", "b2.mp4"):
        (videos / name).write_bytes(astronaut_mp4.read_bytes())
    (videos / "notes.txt").write_text("x")
    clips = tmp_path / "clips"
    for clip in ("c1", "c2"):
        (clips / clip).mkdir(parents=True)
        (clips / clip / "00001.png").write_bytes(b"")
    assert expand_inputs([videos, clips / "c1", clips, tmp_path / "missing.mp4"]) == [
        videos / "b2.mp4", videos / "b10.mp4", clips / "c1", clips / "c1", clips / "c2", tmp_path / "missing.mp4"]


# --------------------------------------------------------------------------------------
# The pipeline


@pytest.mark.parametrize("render_size", [64, 96])  # 96: the test transform resizes, in both paths
def test_none_detector_gives_the_probabilities_of_evaluation(tmp_path, network, scorer, render_size):
    from PIL import Image

    from dferbench.run.engine import predict_module

    dataset = make_synthetic_dataset(num_clips=35, image_size=render_size)
    record = max(dataset.split(1, "test"), key=lambda r: r.n_frames)
    reader = SyntheticReader(render_size)
    folder = tmp_path / record.clip_id
    folder.mkdir()
    for i, frame in enumerate(reader(record, range(record.n_frames))):
        Image.fromarray(frame).save(folder / f"{i + 1:05d}.png")  # lossless: the same pixels

    # Evaluation: the test split's loader on the renderer, then the network.
    clips = ClipSet("synthetic", [record], reader, num_frames=8, image_size=64, normalize="clip")
    expected = torch.softmax(torch.from_numpy(predict_module(network, clips, batch_size=4, device="cpu")), -1)

    for window_s in (None, record.n_frames / 25.0):  # the whole clip, as one window of its length
        [result] = predict_videos([folder], scorer, WholeFrame(), window_s=window_s, echo=lambda s: None)
        assert result.ok, result.error
        [window] = result.tracks[0].windows
        assert window.sampled_frames == segment_indices(record.n_frames, 8, train=False).tolist()
        np.testing.assert_allclose(window.probs, expected[0].numpy(), rtol=0, atol=1e-6)


def test_none_detector_on_a_video_file_matches_evaluation_of_that_file(tmp_path, network, scorer):
    from dferbench.run.engine import predict_module

    record = max(make_synthetic_dataset(num_clips=35).split(1, "test"), key=lambda r: r.n_frames)
    n = record.n_frames
    path = tmp_path / "clip.mp4"
    write_mp4(path, SyntheticReader(64)(record, range(n)), fps=15)
    clips = ClipSet("clips", [ClipRecord("v", str(path), n, 0)], VideoFileReader(), num_frames=8, image_size=64,
                    normalize="clip")
    expected = torch.softmax(torch.from_numpy(predict_module(network, clips, batch_size=4, device="cpu")), -1)
    [result] = predict_videos([path], scorer, WholeFrame(), window_s=n / 15, stride_s=1.0, echo=lambda s: None,
                              output_dir=tmp_path / "out", make_video=True)
    [window] = result.tracks[0].windows
    assert (window.first_frame, window.last_frame) == (0, n - 1)
    assert VideoFileReader().count_frames(result.files["mp4"]) == n
    np.testing.assert_allclose(window.probs, expected[0].numpy(), rtol=0, atol=1e-6)


def test_outputs_carry_the_class_names(tmp_path, astronaut_mp4, scorer):
    lines = []
    [result] = predict_videos([astronaut_mp4], scorer, HaarDetector(), window_s=1.0, stride_s=0.5,
                              output_dir=tmp_path / "out", make_video=True, echo=lines.append)
    assert result.ok, result.error
    assert result.frames_with_face >= result.detected_frames - 1 and result.detect_ms_per_frame > 0
    folder = tmp_path / "out" / "astronaut"
    data = json.loads((folder / "timeline.json").read_text())
    assert data["classes"] == list(DFEW_CLASSES)
    [track] = data["tracks"]
    assert track["main"] and len(track["windows"]) == 7
    assert all(abs(sum(w["probs"]) - 1) < 1e-5 and w["top"] in DFEW_CLASSES for w in track["windows"])
    assert data["summary"]["top"] in DFEW_CLASSES and set(data["summary"]["mean_probs"]) == set(DFEW_CLASSES)
    with open(folder / "timeline.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-7:] == list(DFEW_CLASSES) and len(rows) == 7
    assert [float(r["start_s"]) for r in rows] == pytest.approx([0.5 * k for k in range(7)])
    from PIL import Image

    with Image.open(folder / "timeline.png") as image:
        assert image.size[0] > 800
    assert VideoFileReader().count_frames(folder / "annotated.mp4") == N_FRAMES
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary[0]["video"] == "astronaut.mp4" and summary[0]["top"] == data["summary"]["top"]
    assert "1 of 1 inputs predicted" in lines[-1]


def test_every_face_gets_a_track(tmp_path, scorer):
    frames = astronaut_frames()
    small = pan_zoom(skimage_data.astronaut(), N_FRAMES, 112, focus=ASTRONAUT_FACE)
    canvas = np.full((N_FRAMES, SIZE, SIZE + 120, 3), 230, np.uint8)
    canvas[:, :, :SIZE] = frames
    canvas[:, 24:136, SIZE + 4:SIZE + 116] = small[:, :, ::-1]  # a smaller, mirrored second person
    path = tmp_path / "two.mp4"
    write_mp4(path, canvas, FPS)
    [result] = predict_videos([path], scorer, HaarDetector(), window_s=1.0, face="all", echo=lambda s: None)
    assert result.ok, result.error
    assert len(result.tracks) == 2
    main, other = result.tracks
    assert main.main and not other.main
    assert main.boxes[:, 2].max() <= SIZE + 10 and other.boxes[:, 0].min() >= SIZE - 10  # left is the larger face


def bad_videos(folder: Path) -> list[Path]:
    """A missing file, a file of random bytes, a video without a face and one of 0.5 s, in ``folder``."""
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    grey = folder / "grey.mp4"
    write_mp4(grey, np.full((24, 64, 64, 3), 128, np.uint8), FPS)
    short = folder / "short.mp4"
    write_mp4(short, astronaut_frames()[:6], FPS)
    return [folder / "missing.mp4", garbage, grey, short]


def test_bad_inputs_fail_one_line_each_and_the_others_run(tmp_path, astronaut_mp4, scorer):
    inputs = [*bad_videos(tmp_path), astronaut_mp4]
    lines = []
    results = predict_videos(inputs, scorer, HaarDetector(), window_s=1.0, output_dir=tmp_path / "out",
                             echo=lines.append)
    errors = [r.error for r in results]
    assert all(e and "\n" not in e for e in errors[:4]) and results[-1].ok
    assert "no such file" in errors[0]
    assert "cannot be opened as a video" in errors[1]
    assert "no face found by detector 'haar'" in errors[2] and "--face-detector none" in errors[2]
    assert "0.50 s, shorter than one 1 s window" in errors[3]
    assert (tmp_path / "out" / "astronaut" / "timeline.json").exists()
    assert not (tmp_path / "out" / "grey").exists()
    assert "1 of 5 inputs predicted, 4 failed" in lines[-1]
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["error"] * 4 + ["ok"] and rows[2]["error"] == errors[2]


def test_a_scorer_that_disagrees_with_its_classes_fails_that_video_only(tmp_path, astronaut_mp4, scorer):
    class Wrong:
        classes, num_frames, image_size = ["a", "b"], 8, 64

        def score(self, clips):
            return np.full((len(clips), 3), 1 / 3)

    [result] = predict_videos([astronaut_mp4], Wrong(), HaarDetector(), window_s=1.0, echo=lambda s: None)
    assert "probabilities of shape (7, 3) for 7 windows and 2 classes" in result.error
