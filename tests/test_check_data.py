"""check_dataset: every problem of a tree in one report, never one exception."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dferbench_plugins.datasets.checks import KINDS, check_dataset
from dferbench.testing import truncate_file, write_frames, write_video
from fake_trees import AUTHORS_PREFIX, annotation_line, make_dfew_tree, write_annotation
from dferbench.errors import DferbenchError

CLIPS = {i: (10 + i, (i - 1) % 7 + 1) for i in range(1, 11)}
FOLDS = {k: ([i for i in CLIPS if i % 5 != k - 1], [i for i in CLIPS if i % 5 == k - 1]) for k in range(1, 6)}


@pytest.fixture
def root(tmp_path) -> Path:
    return make_dfew_tree(tmp_path / "DFEW", CLIPS, FOLDS, size=16)


def annotations(folder: Path) -> Path:
    for k, (train, test) in FOLDS.items():
        for split, ids in (("train", train), ("test", test)):
            write_annotation(folder / f"DFEW_set_{k}_{split}.txt", [
                annotation_line(f"{AUTHORS_PREFIX}/DFEW/DFEW_Frame_Face/{i:05d}", CLIPS[i][0], CLIPS[i][1] - 1)
                for i in ids])
    return folder


def test_clean_tree_is_ok(root):
    report = check_dataset("dfew", {"root": str(root)})
    assert report.ok and report.findings == []
    assert report.clips == 10 and report.folds == [1, 2, 3, 4, 5]
    assert report.frames_decoded == sum(n for n, _ in CLIPS.values())
    assert report.format().splitlines()[0].endswith("OK")


def test_every_problem_of_a_broken_tree_is_reported(root, tmp_path):
    ann = annotations(tmp_path / "ann")
    clips = root / "Clip" / "clip_224x224"
    shutil.rmtree(clips / "00003")                                  # missing clip
    truncate_file(clips / "00004" / "00005.jpg", 0.3)               # truncated JPEG
    (clips / "00006" / "00002.jpg").write_bytes(b"not a jpeg")      # garbage JPEG
    (clips / "00008" / "00001.jpg").unlink()                        # count mismatch
    for p in (clips / "00009").iterdir():                           # empty clip
        p.unlink()
    f1 = ann / "DFEW_set_1_train.txt"
    lines = f1.read_text().splitlines()
    lines += ["", f"{AUTHORS_PREFIX}/DFEW/DFEW_Frame_Face/00002 11 nine",   # malformed (line 10)
              f"{AUTHORS_PREFIX}/DFEW/DFEW_Frame_Face/00002 11 7",          # label out of range (11)
              lines[0],                                                     # duplicate (12)
              (ann / "DFEW_set_1_test.txt").read_text().splitlines()[0]]    # overlap (13)
    f1.write_text("\n".join(lines))
    report = check_dataset("dfew", {"root": str(root), "annotations": str(ann)})
    assert not report.ok
    counts = {k: report.count(k) for k in KINDS}
    assert counts == {"layout": 0, "malformed_line": 1, "label_out_of_range": 1, "missing_clip": 1,
                      "empty_clip": 1, "unreadable": 0, "corrupt": 2, "duplicate": 1, "train_test_overlap": 1,
                      "count_mismatch": 1}
    text = report.format()
    assert "DFEW_set_1_train.txt:10: clip '00002': num_frames and label must be integers" in text
    assert "DFEW_set_1_train.txt:11: clip '00002': label 7 out of range (0..6)" in text
    assert "DFEW_set_1_train.txt:12: clip '00001' already listed at" in text and "DFEW_set_1_train.txt:1" in text
    assert "fold 1: clip '00005'" in text and "is in train and test" in text
    assert "clip '00003' missing" in text and "clip '00009' empty" in text
    assert "00004/00005.jpg: corrupt or truncated image" in text and "00006/00002.jpg" in text
    assert "clip '00008' annotated 18 frames, 17 on disk" in text
    assert "set data.skip_bad_clips=true to drop the clips that are missing, empty" in text
    assert "skip_bad_clips does not drop them" in text  # the corrupt frames: found only by decoding


def test_count_mismatch_alone_is_usable(root, tmp_path):
    ann = annotations(tmp_path / "ann")
    (root / "Clip" / "clip_224x224" / "00001" / "00011.jpg").unlink()
    report = check_dataset("dfew", {"root": str(root), "annotations": str(ann)}, decode=False)
    assert report.ok and report.count("count_mismatch") == 1 and report.frames_decoded == 0
    assert "[note]" in report.format()


@pytest.mark.parametrize("options,expected", [
    ({}, "no dataset root"),
    ({"root": "/definitely/not/here"}, "is not a directory"),
])
def test_broken_layout_gives_a_report_not_an_exception(options, expected):
    report = check_dataset("dfew", options)
    assert not report.ok and report.count("layout") == 1
    assert expected in report.format()


def test_missing_split_folder_and_fold(root):
    (root / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_2.csv").unlink()
    report = check_dataset("dfew", {"root": str(root)}, decode=False)
    assert not report.ok and "fold 2 has no train file" in report.format()
    shutil.rmtree(root / "EmoLabel_DataSplit" / "test(single-labeled)")
    report = check_dataset("dfew", {"root": str(root)}, decode=False)
    assert "no test folder" in report.format()


def test_mafw_and_ferv39k_annotation_trees(tmp_path):
    ann = tmp_path / "annotation"
    write_frames(tmp_path / "MAFW" / "data" / "faces" / "00025", 4, size=8)
    write_annotation(ann / "MAFW_set_1_train.txt", [f"{AUTHORS_PREFIX}/MAFW/data/faces/00025 4 10"])
    write_annotation(ann / "MAFW_set_1_test.txt", [f"{AUTHORS_PREFIX}/MAFW/data/faces/00026 4 10"])
    report = check_dataset("mafw", {"root": str(tmp_path / "MAFW"), "annotations": str(ann)})
    assert report.count("missing_clip") == 1 and report.clips == 1 and report.frames_decoded == 4
    report = check_dataset("ferv39k", {"root": str(tmp_path / "MAFW")})
    assert report.count("layout") == 1 and "FERV39K_{train,test}.txt" in report.format()


def test_custom_with_corrupt_video(tmp_path):
    write_video(tmp_path / "ok.mp4", 8)
    cut = write_video(tmp_path / "cut.mp4", 30)
    truncate_file(cut, 0.4)
    (tmp_path / "clips.csv").write_text("path,label\nok.mp4,happy\ncut.mp4,sad\n")
    report = check_dataset("custom", {"file": str(tmp_path / "clips.csv")})
    assert not report.ok and report.count("unreadable") == 1
    assert "cut.mp4" in report.format()
    assert report.frames_decoded == 8


def test_unknown_dataset_is_an_error():
    with pytest.raises(DferbenchError, match="check-data knows the datasets custom, dfew, ferv39k, mafw"):
        check_dataset("kinetics", {})


def test_check_data_command_exit_status(root):
    from click.testing import CliRunner

    from dferbench.cli import cli

    ok = CliRunner().invoke(cli, ["check-data", "--dataset", "dfew", "--root", str(root)])
    assert ok.exit_code == 0 and ok.output.splitlines()[0].endswith("OK")
    truncate_file(root / "Clip" / "clip_224x224" / "00004" / "00005.jpg", 0.3)
    bad = CliRunner().invoke(cli, ["check-data", "-d", "dfew", "--root", str(root)])
    assert bad.exit_code == 1 and "00004" in bad.output and "00005.jpg" in bad.output
