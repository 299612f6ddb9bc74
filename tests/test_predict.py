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
    from dferbench_plugins.dferclip import OPTIONS, build_network

    torch.manual_seed(0)
    options = dict(OPTIONS, clip_model="dferbench-tiny", pretrained="dferbench-synthetic")
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


def test_bad_inputs_fail_one_line_each_and_the_others_run(tmp_path, astronaut_mp4, scorer):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    grey = tmp_path / "grey.mp4"
    write_mp4(grey, np.full((24, 64, 64, 3), 128, np.uint8), FPS)
    short = tmp_path / "short.mp4"
    write_mp4(short, astronaut_frames()[:6], FPS)  # 0.5 s
    inputs = [tmp_path / "missing.mp4", garbage, grey, short, astronaut_mp4]
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


# --------------------------------------------------------------------------------------
# `dferbench predict`: checkpoints in, timelines out


def _invoke(args: list[str]):
    from click.testing import CliRunner

    from dferbench.cli import cli

    return CliRunner().invoke(cli, ["predict", *map(str, args)])


@pytest.fixture(scope="module")
def authors_network():
    """A tiny DFER-CLIP scoring the synthetic (DFEW-ordered) classes with the descriptors."""
    from dferbench.models.clip import create_clip
    from dferbench_plugins.dferclip.network import DFERCLIP
    from dferbench_plugins.textsets import descriptor_texts

    torch.manual_seed(7)
    clip, tok = create_clip("dferbench-test-tiny", None)
    model = DFERCLIP(clip, [t[0] for t in descriptor_texts(list(DFEW_CLASSES))], tokenizer=tok)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def authors_pth(authors_network, tmp_path_factory) -> Path:
    from test_models_checkpoints import _save_authors_checkpoint

    path = tmp_path_factory.mktemp("authors") / "DFEW_set_1_model_best.pth"
    _save_authors_checkpoint(authors_network, path, with_recorder=False)
    return path


TINY = ["--set", "model.clip_model=dferbench-test-tiny"]  # heads the shapes cannot show


def test_cli_predicts_with_the_authors_pth_and_a_dataset(tmp_path, astronaut_mp4, authors_pth, authors_network):
    res = _invoke([astronaut_mp4, "-c", authors_pth, "-d", "dfew", *TINY, "--window", 1, "-o", tmp_path / "out"])
    assert res.exit_code == 0, res.output
    assert "classes of 'dfew', class texts those of text set 'descriptors'" in res.output
    assert "1 of 1 inputs predicted" in res.output
    data = json.loads((tmp_path / "out" / "astronaut" / "timeline.json").read_text())
    assert data["classes"] == list(DFEW_CLASSES) and data["settings"]["checkpoint"] == str(authors_pth)
    assert (data["settings"]["num_frames"], data["settings"]["image_size"]) == (16, 32)  # read from the weights
    # The same probabilities as the network that was saved, on DFEW's [0, 1] pixels.
    scorer = ModuleScorer(authors_network, DFEW_CLASSES, num_frames=16, image_size=32, normalize="none")
    [expected] = predict_videos([astronaut_mp4], scorer, HaarDetector(), window_s=1.0, echo=lambda s: None)
    got = [w["probs"] for w in data["tracks"][0]["windows"]]
    np.testing.assert_allclose(got, [w.probs for w in expected.tracks[0].windows], rtol=0, atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["-d", "mafw"], "DFEW_set_1_model_best.pth scores 7 classes but dataset 'mafw' has 11"),
    ([], "does not say which classes it scores: name the dataset it was trained on (--dataset dfew"),
    (["-d", "nosuch"], "unknown dataset 'nosuch'"),
    (["-d", "dfew", "--window", "-1"], "window must be >= 0 seconds"),
    (["-d", "dfew", "--stride", "0"], "stride must be > 0 seconds"),
    (["-d", "dfew", "--face-detector", "haarr"], "unknown face detector 'haarr'. Did you mean 'haar'?"),
])
def test_cli_a_wrong_checkpoint_or_setting_is_one_line(tmp_path, astronaut_mp4, authors_pth, args, message):
    res = _invoke([astronaut_mp4, "-c", authors_pth, *TINY, "-o", tmp_path / "out", *args])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == [res.output.strip()] and message in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_cli_bad_inputs_are_one_line_each_and_exit_1(tmp_path, astronaut_mp4, authors_pth):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    grey = tmp_path / "grey.mp4"
    write_mp4(grey, np.full((24, 64, 64, 3), 128, np.uint8), FPS)
    short = tmp_path / "short.mp4"
    write_mp4(short, astronaut_frames()[:6], FPS)
    inputs = [tmp_path / "missing.mp4", garbage, grey, short, astronaut_mp4]
    res = _invoke([*inputs, "-c", authors_pth, "-d", "dfew", *TINY, "--window", 1, "-o", tmp_path / "out"])
    assert res.exit_code == 1, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4 and "Traceback" not in res.output
    assert "missing.mp4" in errors[0] and "garbage.mp4: " in errors[1] and "no face found" in errors[2]
    assert "shorter than one 1 s window" in errors[3]
    assert "1 of 5 inputs predicted, 4 failed" in res.output
    assert (tmp_path / "out" / "astronaut" / "timeline.png").exists()


def test_cli_help_teaches_with_examples():
    res = _invoke(["--help"])
    assert res.exit_code == 0
    for text in ("Examples:", "--face-detector none --window 0", "--dataset dfew", "Exit status 1"):
        assert text in res.output


# --------------------------------------------------------------------------------------
# End to end: a checkpoint written by a real run


NUM_CLIPS = 35


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory) -> Path:
    from click.testing import CliRunner

    from dferbench.cli import cli

    out = tmp_path_factory.mktemp("runs")
    res = CliRunner().invoke(cli, ["run", "-m", "dferclip", "-d", "synthetic", "--folds", "1", "-o", str(out),
                                   "--set", "model.save_checkpoint=true", "--set", "train.epochs=1",
                                   "--set", f"data.num_clips={NUM_CLIPS}", "--no-leaderboard"])
    assert res.exit_code == 0, res.output
    [path] = out.rglob("fold1-seed1.checkpoint.safetensors")
    assert path.with_suffix(".json").is_file() and path.with_name("fold1-seed1.json").is_file()
    return path


@pytest.mark.slow
def test_predict_on_a_test_clip_gives_the_probabilities_of_evaluate(tmp_path, run_checkpoint):
    from PIL import Image

    from dferbench.run.engine import predict_module
    from dferbench.run.trained import open_checkpoint

    record = max(make_synthetic_dataset(num_clips=NUM_CLIPS).split(1, "test"), key=lambda r: r.n_frames)
    reader = SyntheticReader(64)
    folder = tmp_path / record.clip_id
    folder.mkdir()
    for i, frame in enumerate(reader(record, range(record.n_frames))):
        Image.fromarray(frame).save(folder / f"{i + 1:05d}.png")
    res = _invoke([folder, "-c", run_checkpoint, "--face-detector", "none", "--window", 0, "-o", tmp_path / "out"])
    assert res.exit_code == 0, res.output
    [window] = json.loads((tmp_path / "out" / record.clip_id / "timeline.json").read_text())["tracks"][0]["windows"]

    # Evaluation's own path on the same clip: the test loader, then the checkpoint's network.
    loaded = open_checkpoint(run_checkpoint)
    clips = ClipSet("synthetic", [record], reader, num_frames=8, image_size=64, normalize="clip")
    logits = torch.from_numpy(predict_module(loaded.network, clips, batch_size=4, device="cpu"))
    np.testing.assert_allclose(window["probs"], torch.softmax(logits, -1)[0].numpy(), rtol=0, atol=1e-6)

    # `dferbench evaluate` on the test fold: the run's numbers, and this clip's logits (6 digits in the CSV).
    from click.testing import CliRunner

    from dferbench.cli import cli

    res = CliRunner().invoke(cli, ["evaluate", "-c", str(run_checkpoint), "-d", "synthetic", "--fold", "1",
                                   "--set", f"data.num_clips={NUM_CLIPS}", "-o", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    [result] = (tmp_path / "ev").rglob("fold1-seed1.json")
    trained = json.loads(run_checkpoint.with_name("fold1-seed1.json").read_text())
    evaluated = json.loads(result.read_text())
    assert (evaluated["uar"], evaluated["war"], evaluated["confusion"]) == (trained["uar"], trained["war"],
                                                                            trained["confusion"])
    with open(result.with_suffix(".predictions.csv")) as f:
        row = next(r for r in csv.DictReader(f) if r["clip_id"] == record.clip_id)
    csv_logits = torch.tensor([float(row[f"logit_{c}"]) for c in DFEW_CLASSES])
    np.testing.assert_allclose(window["probs"], torch.softmax(csv_logits, -1).numpy(), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_predict_the_astronaut_with_the_trained_checkpoint(tmp_path, run_checkpoint):
    from dferbench.predict.demo import astronaut_video

    video = tmp_path / "astronaut.mp4"
    astronaut_video(video, n_frames=72, size=192, fps=24.0)  # 3 s
    res = _invoke([video, "-c", run_checkpoint, "--video", "-o", tmp_path / "out"])
    assert res.exit_code == 0, res.output
    folder = tmp_path / "out" / "astronaut"
    data = json.loads((folder / "timeline.json").read_text())
    assert data["detector"] == "haar" and data["frames_with_face"] >= data["detected_frames"] - 1
    assert data["classes"] == list(DFEW_CLASSES) and len(data["tracks"][0]["windows"]) == 3  # 2 s every 0.5 s
    with open(folder / "timeline.csv") as f:
        header = next(csv.reader(f))
    assert header[-7:] == list(DFEW_CLASSES)
    assert (folder / "timeline.png").stat().st_size > 10_000 and (folder / "annotated.mp4").exists()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary[0]["status"] == "ok" and summary[0]["top"] in DFEW_CLASSES
    assert "1 of 1 inputs predicted" in res.output
