"""DFEW, FERV39k, MAFW and custom datasets from tiny trees in their official layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dferbench_plugins.datasets.annotations import Rebaser, clip_id_from_path, parse_annotation_text
from dferbench_plugins.datasets.layouts import (
    COMMON_OPTIONS,
    DFEW_CLASSES,
    DFEW_CSV_LABELS,
    MAFW_CLASSES,
    build_custom,
    build_dfew,
    build_ferv39k,
    build_mafw,
)
from dferbench.testing import write_frames, write_video
from fake_trees import AUTHORS_PREFIX, annotation_line, make_dfew_tree, write_annotation
from dferbench.errors import DferbenchError

# video id -> (frames, DFEW CSV label 1..7)
DFEW_CLIPS = {i: (8 + i, (i - 1) % 7 + 1) for i in range(1, 11)}


def dfew_folds() -> dict[int, tuple[list[int], list[int]]]:
    ids = sorted(DFEW_CLIPS)
    return {k: ([i for i in ids if i % 5 != k - 1], [i for i in ids if i % 5 == k - 1]) for k in range(1, 6)}


@pytest.fixture
def dfew_root(tmp_path) -> Path:
    return make_dfew_tree(tmp_path / "DFEW", DFEW_CLIPS, dfew_folds(), size=16)


def write_dfew_annotations(folder: Path, prefix: str, *, bump: dict[int, int] | None = None) -> Path:
    bump = bump or {}
    for k, (train, test) in dfew_folds().items():
        for split, ids in (("train", train), ("test", test)):
            write_annotation(folder / f"DFEW_set_{k}_{split}.txt", [
                annotation_line(f"{prefix}/{i:05d}", DFEW_CLIPS[i][0] + bump.get(i, 0), DFEW_CLIPS[i][1] - 1)
                for i in ids
            ])
    return folder


# ------------------------------------------------------------------------ DFEW


def test_dfew_label_table_is_dfews_own_order():
    assert DFEW_CSV_LABELS == {1: "happiness", 2: "sadness", 3: "neutral", 4: "anger",
                               5: "surprise", 6: "disgust", 7: "fear"}
    assert DFEW_CLASSES == ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    assert [DFEW_CLASSES.index(DFEW_CSV_LABELS[i]) for i in range(1, 8)] == list(range(7))


def test_dfew_from_official_csvs(dfew_root):
    ds = build_dfew({"root": str(dfew_root)})
    assert ds.name == "dfew" and ds.augmentation == "dfew" and ds.classes == DFEW_CLASSES
    assert ds.folds == [1, 2, 3, 4, 5]
    assert [len(ds.split(1, s)) for s in ("train", "test")] == [8, 2]
    by_id = {r.clip_id: r for r in ds.split(1, "train") + ds.split(1, "test")}
    assert set(by_id) == {f"{i:05d}" for i in DFEW_CLIPS}
    for i, (n, label) in DFEW_CLIPS.items():
        r = by_id[f"{i:05d}"]
        assert r.n_frames == n and r.label == label - 1
        assert Path(r.source) == (dfew_root / "Clip" / "clip_224x224" / f"{i:05d}").resolve()
    assert ds.notes == {"frame_count_mismatches": 0, "skipped_bad_clips": 0}
    frames = ds.reader(by_id["00003"], [0, 10])
    assert frames.shape == (2, 16, 16, 3)


def test_dfew_split_folders_found_by_pattern(dfew_root):
    split = dfew_root / "EmoLabel_DataSplit"
    (split / "train(single-labeled)").rename(split / "Train_Single")
    (split / "test(single-labeled)").rename(split / "test")
    assert build_dfew({"root": str(dfew_root)}).folds == [1, 2, 3, 4, 5]


def test_dfew_from_dfer_clip_annotations_rebased_onto_root(dfew_root, tmp_path):
    # The released files point at the authors' DFEW_Frame_Face folder, not Clip/clip_224x224.
    ann = write_dfew_annotations(tmp_path / "ann", f"{AUTHORS_PREFIX}/DFEW/DFEW_Frame_Face", bump={3: 2, 4: -1})
    ds = build_dfew({"root": str(dfew_root), "annotations": str(ann)})
    r = next(r for r in ds.split(1, "train") if r.clip_id == "00003")
    assert r.n_frames == DFEW_CLIPS[3][0]  # what is on disk, not the annotation's claim
    assert Path(r.source).parent.name == "clip_224x224"
    assert ds.notes["frame_count_mismatches"] == 2  # unique clips, not lines across folds
    assert not (ann / "DFEW_set_1_train.txt").read_text().endswith("\n")


def test_dfew_annotations_already_pointing_here_need_no_root(dfew_root, tmp_path):
    ann = write_dfew_annotations(tmp_path / "ann", str(dfew_root / "Clip" / "clip_224x224"))
    ds = build_dfew({"annotations": str(ann)})
    assert len(ds.split(2, "test")) == 2


def test_dfew_missing_clip_is_an_error_or_skipped(dfew_root):
    shutil.rmtree(dfew_root / "Clip" / "clip_224x224" / "00007")
    with pytest.raises(DferbenchError, match=r"set_\d\.csv:\d+: clip '00007' missing: .*00007.*skip_bad_clips"):
        build_dfew({"root": str(dfew_root)})
    ds = build_dfew({"root": str(dfew_root), "skip_bad_clips": True})
    assert ds.notes["skipped_bad_clips"] == 1
    assert all(r.clip_id != "00007" for f in ds.folds for s in ("train", "test") for r in ds.split(f, s))


def test_dfew_empty_clip_folder(dfew_root):
    for p in (dfew_root / "Clip" / "clip_224x224" / "00002").iterdir():
        p.unlink()
    with pytest.raises(DferbenchError, match="'00002' empty"):
        build_dfew({"root": str(dfew_root)})
    assert build_dfew({"root": str(dfew_root), "skip_bad_clips": True}).notes["skipped_bad_clips"] == 1


def test_dfew_csv_label_out_of_range_names_file_and_line(dfew_root):
    csv = dfew_root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv"
    csv.write_text(csv.read_text() + "3,0\n")  # 0 = clip without a single label
    with pytest.raises(DferbenchError, match=r"set_2\.csv:4: clip '00003': label 0 out of range \(1\.\.7\)"):
        build_dfew({"root": str(dfew_root)})


def test_dfew_missing_layout_is_explained(tmp_path):
    with pytest.raises(DferbenchError, match="no dataset root"):
        build_dfew({})
    (tmp_path / "x").mkdir()
    with pytest.raises(DferbenchError, match="no EmoLabel_DataSplit folder"):
        build_dfew({"root": str(tmp_path / "x")})


def test_dfew_fold_without_test_file(dfew_root):
    (dfew_root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_4.csv").unlink()
    with pytest.raises(DferbenchError, match="fold 4 has no test file"):
        build_dfew({"root": str(dfew_root)})


def test_duplicate_and_overlap_are_errors(dfew_root, tmp_path):
    ann = write_dfew_annotations(tmp_path / "ann", f"{AUTHORS_PREFIX}/DFEW/DFEW_Frame_Face")
    f = ann / "DFEW_set_1_train.txt"
    original = f.read_text()
    f.write_text(original + "\n" + original.splitlines()[0])
    with pytest.raises(DferbenchError, match="listed twice"):
        build_dfew({"root": str(dfew_root), "annotations": str(ann)})
    test_line = (ann / "DFEW_set_1_test.txt").read_text().splitlines()[0]
    f.write_text(original + "\n" + test_line)
    with pytest.raises(DferbenchError, match="fold 1: 1 clip\\(s\\) are in both train and test"):
        build_dfew({"root": str(dfew_root), "annotations": str(ann)})


# ------------------------------------------------------------------------ annotation files


def test_parse_annotation_text_edge_cases():
    text = "\r\n/a/b c/00001 12 3\r\n\n   \n/a/00002 7 0"  # CRLF, blank lines, no final newline
    lines, errors = parse_annotation_text(text, "f.txt", num_classes=7)
    assert errors == []
    assert [(l.path, l.n_frames, l.label, l.line) for l in lines] == [("/a/b c/00001", 12, 3, 2), ("/a/00002", 7, 0, 5)]


def test_parse_annotation_text_errors_have_line_numbers():
    text = "/a/1 10 0\n/a/2 ten 0\n/a/3 10\n/a/4 10 9\n/a/5 0 1\n/a/6 5 -1"
    lines, errors = parse_annotation_text(text, "DFEW_set_1_train.txt", num_classes=7)
    assert [l.line for l in lines] == [1]
    assert [str(e).split(": ")[0] for e in errors] == [f"DFEW_set_1_train.txt:{i}" for i in (2, 3, 4, 5, 6)]
    assert [e.kind for e in errors] == ["malformed", "malformed", "label", "malformed", "label"]
    assert "DFEW_set_1_train.txt:4: clip '4': label 9 out of range (0..6)" == str(errors[2])


def test_malformed_line_stops_the_build_with_file_and_line(dfew_root, tmp_path):
    ann = write_dfew_annotations(tmp_path / "ann", f"{AUTHORS_PREFIX}/DFEW/DFEW_Frame_Face")
    f = ann / "DFEW_set_3_test.txt"
    f.write_text(f.read_text() + "\n\n/x/00009 nine 2")
    with pytest.raises(DferbenchError, match=r"DFEW_set_3_test\.txt:4: clip '00009': num_frames and label must be integers"):
        build_dfew({"root": str(dfew_root), "annotations": str(ann)})


def test_rebaser_rule(tmp_path):
    root = tmp_path / "FERV39K"
    for scene in ("Action", "Crime"):
        (root / "2_ClipsforFaceCrop" / scene / "Happy" / "0015").mkdir(parents=True)
    reb = Rebaser(root, ["2_ClipsforFaceCrop"])
    theirs = f"{AUTHORS_PREFIX}/FERV39K/2_ClipsforFaceCrop/Crime/Happy/0015"
    got = reb.resolve(theirs)
    # Longest trailing match wins: the scene is kept, so the repeated id 0015 is not confused.
    assert got.exists and got.path == (root / "2_ClipsforFaceCrop/Crime/Happy/0015").resolve()
    assert reb.resolve("Action/Happy/0015").path.parts[-3] == "Action"  # relative, via search dir
    inside = str((root / "2_ClipsforFaceCrop/Action/Happy/0015").resolve())
    assert reb.resolve(inside).path == Path(inside)
    missing = reb.resolve(f"{AUTHORS_PREFIX}/FERV39K/2_ClipsforFaceCrop/Crime/Sad/0001")
    assert not missing.exists and missing.path == (root / "2_ClipsforFaceCrop/Crime/Sad/0001").resolve()
    plain = Rebaser(None, relative_to=tmp_path)
    assert plain.resolve("FERV39K").path == tmp_path / "FERV39K" and plain.resolve("FERV39K").exists


def test_clip_ids():
    assert clip_id_from_path("/x/DFEW_Frame_Face/00001") == "00001"
    assert clip_id_from_path("/x/2_ClipsforFaceCrop/Action/Happy/0015", 3) == "Action/Happy/0015"
    assert clip_id_from_path("/abs/videos/a.mp4", 64) == "abs/videos/a"


# ------------------------------------------------------------------------ FERV39k


def make_ferv39k(tmp_path: Path, annotation_dir: str = "annotation") -> Path:
    root = tmp_path / "FERV39K"
    clips = [("Action", "Happy", "0015", 12, 0), ("Crime", "Happy", "0015", 9, 0),
             ("Action", "Sad", "0001", 20, 1), ("Speech", "Fear", "0002", 17, 6)]
    for i, (scene, emo, cid, n, _) in enumerate(clips):
        write_frames(root / "2_ClipsforFaceCrop" / scene / emo / cid, n, size=8, seed=i,
                     names=[f"{j:02d}.jpg" for j in range(n)])
    lines = [annotation_line(f"{AUTHORS_PREFIX}/FERV39K/2_ClipsforFaceCrop/{s}/{e}/{c}", n, lab)
             for s, e, c, n, lab in clips]
    write_annotation(root / annotation_dir / "FERV39K_train.txt", lines[:3])
    write_annotation(root / annotation_dir / "FERV39K_test.txt", lines[3:])
    return root


def test_ferv39k_single_fold_scene_aware_ids(tmp_path):
    root = make_ferv39k(tmp_path)
    ds = build_ferv39k({"root": str(root)})  # annotation/ found under root
    assert ds.folds == [1] and ds.augmentation == "ferv39k" and ds.classes == DFEW_CLASSES
    train = ds.split(1, "train")
    assert [r.clip_id for r in train] == ["Action/Happy/0015", "Crime/Happy/0015", "Action/Sad/0001"]
    assert [r.n_frames for r in train] == [12, 9, 20]
    assert ds.split(1, "test")[0].label == 6


def test_ferv39k_official_split_files_as_fallback(tmp_path):
    root = make_ferv39k(tmp_path)
    shutil.rmtree(root / "annotation")
    setups = root / "4_setups" / "All_scenes"
    setups.mkdir(parents=True)
    (setups / "train_All.csv").write_text("Action/Happy/0015 Happy\nAction/Sad/0001 Sad\n")
    (setups / "test_All.csv").write_text("Speech/Fear/0002 Fear\nCrime/Happy/0015 Happy")
    ds = build_ferv39k({"root": str(root)})
    assert [(r.clip_id, r.label) for r in ds.split(1, "test")] == [("Speech/Fear/0002", 6), ("Crime/Happy/0015", 0)]
    (setups / "test_All.csv").write_text("Speech/Fear/0002 Terrified\n")
    with pytest.raises(DferbenchError, match=r"test_All\.csv:1: unknown emotion 'Terrified'"):
        build_ferv39k({"root": str(root)})


def test_ferv39k_official_split_files_anywhere_through_data_annotations(tmp_path):
    # a Google Drive download puts 4_setups next to the face crops' folder, not inside it
    root = make_ferv39k(tmp_path / "faces")
    shutil.rmtree(root / "annotation")
    setups = tmp_path / "drive-download" / "4_setups" / "All_scenes"
    setups.mkdir(parents=True)
    (setups / "train_All.csv").write_text("Action/Happy/0015 Happy\n")
    (setups / "test_All.csv").write_text("Speech/Fear/0002 Fear\n")
    ds = build_ferv39k({"root": str(root), "annotations": str(setups)})
    assert [(r.clip_id, r.label) for r in ds.split(1, "test")] == [("Speech/Fear/0002", 6)]
    with pytest.raises(DferbenchError, match="set data.root to the folder holding 2_ClipsforFaceCrop"):
        build_ferv39k({"annotations": str(setups)})


def test_ferv39k_without_split_files_says_what_to_set(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DferbenchError, match=r"set data.annotations.*train_All\.csv / test_All\.csv"):
        build_ferv39k({"root": str(tmp_path / "empty")})
    with pytest.raises(DferbenchError, match="no DFER-CLIP annotation files .* in .*empty.*nor FERV39k's own"):
        build_ferv39k({"root": str(tmp_path / "empty"), "annotations": str(tmp_path / "empty")})


# ------------------------------------------------------------------------ MAFW


def make_mafw(tmp_path: Path, frames_under: str = "data/faces") -> tuple[Path, Path]:
    root = tmp_path / "MAFW"
    ann = tmp_path / "annotation"
    ids = [25, 28, 108, 123, 137, 152]
    for j, i in enumerate(ids):
        write_frames(root / frames_under / f"{i:05d}", 6 + j, size=8, seed=i)
    for k in range(1, 3):
        test = ids[(k - 1) * 3:(k - 1) * 3 + 3]
        for split, sel in (("train", [i for i in ids if i not in test]), ("test", test)):
            write_annotation(ann / f"MAFW_set_{k}_{split}.txt", [
                annotation_line(f"{AUTHORS_PREFIX}/MAFW/data/faces/{i:05d}", 6 + ids.index(i), (i % 11))
                for i in sel])
    return root, ann


def test_mafw_eleven_classes_and_rebasing(tmp_path):
    root, ann = make_mafw(tmp_path)
    ds = build_mafw({"root": str(root), "annotations": str(ann)})
    assert ds.classes == MAFW_CLASSES and len(ds.classes) == 11
    assert ds.classes[7:] == ["contempt", "anxiety", "helplessness", "disappointment"]
    assert ds.folds == [1, 2] and ds.augmentation == "mafw"
    r = next(r for r in ds.split(2, "test") if r.clip_id == "00123")
    assert r.label == 123 % 11 and r.n_frames == 9


def test_mafw_frames_elsewhere_via_frames_dir(tmp_path):
    root, ann = make_mafw(tmp_path, frames_under="my_faces")
    with pytest.raises(DferbenchError, match="missing"):
        build_mafw({"root": str(root), "annotations": str(ann)})
    ds = build_mafw({"root": str(root), "annotations": str(ann), "frames_dir": "my_faces"})
    assert len(ds.split(2, "train")) == 3


def test_mafw_label_11_is_out_of_range(tmp_path):
    root, ann = make_mafw(tmp_path)
    f = ann / "MAFW_set_2_test.txt"
    f.write_text(f.read_text() + f"\n{AUTHORS_PREFIX}/MAFW/data/faces/00025 6 11")
    with pytest.raises(DferbenchError, match=r"MAFW_set_2_test\.txt:4: clip '00025': label 11 out of range \(0\.\.10\)"):
        build_mafw({"root": str(root), "annotations": str(ann)})


# ------------------------------------------------------------------------ custom


def make_custom(tmp_path: Path) -> Path:
    write_frames(tmp_path / "frames" / "bob_01", 5, size=8)
    write_frames(tmp_path / "frames" / "bob_02", 7, size=8)
    write_video(tmp_path / "videos" / "ann_01.mp4", 12, size=16)
    write_video(tmp_path / "videos" / "ann_02.webm", 9, size=16, codec="libvpx")
    return tmp_path


def test_custom_csv_with_split_and_class_names(tmp_path):
    make_custom(tmp_path)
    f = tmp_path / "clips.csv"
    f.write_text("# my clips\n# classes: calm, upset\npath,label,split\nframes/bob_01,calm,train\n"
                 "frames/bob_02,Upset,train\nvideos/ann_01.mp4,1,test\nvideos/ann_02.webm,calm,test\n")
    ds = build_custom({"file": str(f)})
    assert ds.classes == ["calm", "upset"] and ds.folds == [1] and ds.augmentation == "none"
    test = ds.split(1, "test")
    assert [(r.clip_id, r.n_frames, r.label) for r in test] == [("videos/ann_01", 12, 1), ("videos/ann_02", 9, 0)]
    assert ds.reader(test[0], [0, 11]).shape == (2, 16, 16, 3)
    assert ds.reader(ds.split(1, "train")[1], [6]).shape == (1, 8, 8, 3)


def test_custom_infers_dfew_classes_and_fold_only_means_cross_validation(tmp_path):
    make_custom(tmp_path)
    f = tmp_path / "clips.csv"
    f.write_text("clip,label,fold\nframes/bob_01,happy,1\nframes/bob_02,sad,2\n"
                 "videos/ann_01.mp4,fear,1\nvideos/ann_02.webm,angry,2\n")
    ds = build_custom({"file": str(f), "augmentation": "mafw"})
    assert ds.classes == DFEW_CLASSES and ds.augmentation == "mafw"
    assert [r.clip_id for r in ds.split(1, "test")] == ["frames/bob_01", "videos/ann_01"]
    assert [r.clip_id for r in ds.split(1, "train")] == ["frames/bob_02", "videos/ann_02"]
    assert [r.label for r in ds.split(2, "test")] == [1, 3]


def test_custom_toml_without_splits_is_test_only(tmp_path):
    make_custom(tmp_path)
    f = tmp_path / "clips.toml"
    f.write_text('[[clips]]\npath = "videos/ann_01.mp4"\nlabel = "joy"\n\n'
                 '[[clips]]\npath = "frames/bob_01"\nlabel = "awe"\n')
    ds = build_custom({"file": str(f)})
    assert ds.classes == ["awe", "joy"]
    assert ds.split(1, "train") == [] and [r.label for r in ds.split(1, "test")] == [1, 0]


def test_custom_errors_name_file_and_line(tmp_path):
    make_custom(tmp_path)
    f = tmp_path / "clips.csv"
    f.write_text("# classes: calm, upset\npath,label\nframes/bob_01,calm\nframes/bob_02,angry\n")
    with pytest.raises(DferbenchError, match=r"clips\.csv:4: clip 'frames/bob_02': label 'angry' is not one of the classes"):
        build_custom({"file": str(f)})
    f.write_text("path,label,split\nframes/bob_01,calm,train\nframes/bob_02,calm,validation\n")
    with pytest.raises(DferbenchError, match=r"clips\.csv:3: clip 'frames/bob_02': split must be train or test"):
        build_custom({"file": str(f)})
    t = tmp_path / "clips.toml"
    t.write_text('classes = ["a", "b"]\n\n[[clips]]\npath = "frames/bob_01"\nlabel = 5\n')
    with pytest.raises(DferbenchError, match=r"clips\.toml:3: clip 'frames/bob_01': label 5"):
        build_custom({"file": str(t)})
    f.write_text("path,label\nframes/nope,calm\n")
    with pytest.raises(DferbenchError, match="'frames/nope' missing"):
        build_custom({"file": str(f)})
    with pytest.raises(DferbenchError, match="data.file"):
        build_custom({})


def test_custom_files_written_on_windows(tmp_path):
    make_custom(tmp_path)
    f = tmp_path / "clips.csv"
    f.write_bytes(b"path,label\r\nframes\\bob_01,happy\r\nvideos\\ann_01.mp4,sad\r\n")
    assert [r.clip_id for r in build_custom({"file": str(f)}).split(1, "test")] == ["frames/bob_01", "videos/ann_01"]
    f.write_text("path;label\nframes/bob_01;happy\n")
    with pytest.raises(DferbenchError, match="separated by commas"):
        build_custom({"file": str(f)})
    f.write_bytes("path,label\nframes/bob_01,tristesse\nframes/bob_02,colère\n".encode("cp1252"))
    with pytest.raises(DferbenchError, match=r"clips\.csv: not UTF-8 text .* save it as UTF-8"):
        build_custom({"file": str(f)})
    t = tmp_path / "clips.toml"  # Notepad writes a byte-order mark
    t.write_bytes('\ufeff[[clips]]\npath = "frames/bob_01"\nlabel = "calm"\n'.encode("utf-8"))
    assert [r.clip_id for r in build_custom({"file": str(t)}).split(1, "test")] == ["frames/bob_01"]


def test_clips_found_nowhere_point_at_data_frames_dir(tmp_path):
    ann = tmp_path / "annotation"
    write_frames(tmp_path / "MAFW" / "data" / "frames" / "00005", 4, size=8)
    write_annotation(ann / "MAFW_set_1_train.txt", [f"{AUTHORS_PREFIX}/MAFW/frames/00005 4 1"])
    write_annotation(ann / "MAFW_set_1_test.txt", [f"{AUTHORS_PREFIX}/MAFW/frames/00005 4 1"])
    options = {"root": str(tmp_path / "MAFW"), "annotations": str(ann)}
    with pytest.raises(DferbenchError, match=r"none of them was found below .*MAFW: .*set data.frames_dir"):
        build_mafw(options)
    with pytest.raises(DferbenchError, match="in both train and test"):  # found: the next problem shows
        build_mafw({**options, "frames_dir": "data/frames"})


def test_custom_corrupt_video_is_skipped_when_asked(tmp_path):
    make_custom(tmp_path)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"\x00" * 500)
    f = tmp_path / "clips.csv"
    f.write_text("path,label\nvideos/ann_01.mp4,happy\nvideos/broken.mp4,sad\n")
    with pytest.raises(DferbenchError, match="'videos/broken' unreadable"):
        build_custom({"file": str(f)})
    ds = build_custom({"file": str(f), "skip_bad_clips": True})
    assert ds.notes["skipped_bad_clips"] == 1 and len(ds.split(1, "test")) == 1


# ------------------------------------------------------------------------ plugin


def test_plugin_registers_the_four_datasets():
    import dferbench_plugins.datasets as plugin
    from dferbench.run.config import option_defaults
    from dferbench_plugins.datasets.custom import CUSTOM_OPTIONS

    seen = {}
    plugin.dferbench_register_datasets(
        lambda name, factory, description="", options=None: seen.setdefault(name, (factory, options)))
    assert sorted(seen) == ["custom", "dfew", "ferv39k", "mafw"]
    assert option_defaults(seen["dfew"][1]) == COMMON_OPTIONS
    assert option_defaults(seen["custom"][1]) == CUSTOM_OPTIONS
    assert {"root", "annotations", "skip_bad_clips"} <= set(seen["mafw"][1])


def test_plugin_factory_builds_from_the_data_section(dfew_root):
    import dferbench_plugins.datasets as plugin

    options = dict(COMMON_OPTIONS, root=str(dfew_root), image_size=224, num_frames=16)  # extra keys ignored
    ds = plugin.build_dfew(options)
    assert len(ds.split(5, "test")) == 2
    frames = ds.reader(ds.split(5, "test")[0], np.arange(3))
    assert frames.dtype == np.uint8


@pytest.mark.parametrize("num_classes,build", [(7, build_dfew), (11, build_mafw)])
def test_reads_the_synthetic_benchmark_written_as_a_real_tree(tmp_path, num_classes, build):
    from dferbench_plugins.synthetic.render import make_synthetic_dataset, write_synthetic_tree

    synthetic = make_synthetic_dataset(num_classes=num_classes, num_clips=30, num_folds=2, image_size=16)
    root = write_synthetic_tree(synthetic, tmp_path / "tree")
    ds = build({"root": str(root)})  # finds root/annotations by itself
    assert ds.folds == synthetic.folds and ds.classes == synthetic.classes
    for fold in ds.folds:
        for split in ("train", "test"):
            ours, theirs = ds.split(fold, split), synthetic.split(fold, split)
            assert [(r.n_frames, r.label) for r in ours] == [(r.n_frames, r.label) for r in theirs]
    assert ds.notes == {"frame_count_mismatches": 0, "skipped_bad_clips": 0}
    r = ds.split(1, "test")[0]
    original = next(s for s in synthetic.split(1, "test") if s.clip_id == Path(r.source).name)
    got = ds.reader(r, [0, r.n_frames - 1]).astype(int)
    assert np.abs(got - synthetic.reader(original, [0, r.n_frames - 1]).astype(int)).mean() < 8  # JPEG q95
