"""`dferbench predict` from checkpoints: the DFER-CLIP authors' .pth with --dataset, wrong
checkpoints and settings (exit 2), bad inputs (exit 1), and end to end from the checkpoint
of a real run (the same probabilities as `dferbench evaluate`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dferbench.data.loader import ClipSet
from dferbench.predict.pipeline import predict_videos
from dferbench.predict.scorer import ModuleScorer
from dferbench_plugins.faces.haar import HaarDetector
from dferbench_plugins.synthetic.render import DFEW_CLASSES, SyntheticReader, make_synthetic_dataset

from test_predict import astronaut_mp4, bad_videos  # noqa: F401  (a fixture)


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
    inputs = [*bad_videos(tmp_path), astronaut_mp4]
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
