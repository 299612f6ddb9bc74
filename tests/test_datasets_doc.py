"""docs/datasets.md's `custom` example, built and checked as the page shows it."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from dferbench import api
from dferbench.plugin import manager as plugins
from dferbench.testing import write_frames, write_video

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def doc_csv() -> str:
    blocks = re.findall(r"```csv\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/datasets.md should hold one ```csv block: the custom example"
    return blocks[0]


def test_custom_example_of_the_docs_checks_ok_and_keeps_subjects(tmp_path):
    text = doc_csv()
    folder = tmp_path / "my_clips"
    folder.mkdir()
    (folder / "clips.csv").write_text(text)
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    for i, row in enumerate(rows):
        if row["path"].endswith(".mp4"):
            write_video(folder / row["path"], 20, size=32, seed=i)
        else:
            write_frames(folder / row["path"], 12 + i, size=32, seed=i)
    settings = [f"data.file={folder / 'clips.csv'}"]
    report = api.check_data("custom", overrides=settings)
    assert report.ok and report.clips == len(rows) == 9 and report.folds == [1, 2, 3], report.format()

    data = plugins.get("dataset", "custom").target({"file": str(folder / "clips.csv")})
    assert data.classes == ["happiness", "sadness", "neutral"]
    for fold, subject in ((1, "ann"), (2, "bob"), (3, "cid")):  # fold k tests on the clips marked k
        assert {r.subject for r in data.split(fold, "test")} == {subject}
        assert subject not in {r.subject for r in data.split(fold, "train")}
    labels = {r.clip_id: data.classes[r.label] for r in data.split(3, "test")}
    assert labels == {"frames/cid_01": "happiness", "frames/cid_02": "sadness", "videos/cid_03": "neutral"}


def test_toml_subject_is_kept(tmp_path):
    write_frames(tmp_path / "a", 4)
    (tmp_path / "clips.toml").write_text('[[clips]]\npath = "a"\nlabel = "happy"\nsubject = "ann"\n')
    data = plugins.get("dataset", "custom").target({"file": str(tmp_path / "clips.toml")})
    assert [r.subject for r in data.split(1, "test")] == ["ann"]
