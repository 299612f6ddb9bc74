"""The embedded CLIP: the shipped checkpoint works, and the recipe that built it is sound.

Never rebuilds the shipped checkpoint; the recipe itself is exercised on the test-tiny
architecture for a few steps.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dferbench.errors import DferbenchError
from dferbench_plugins.synthetic import pretrain
from dferbench_plugins.synthetic.captions import CAPTION_VOCABULARY, content_words
from dferbench_plugins.synthetic.render import clip_params, make_synthetic_dataset
from dferbench.models.clip import create_clip
from dferbench_plugins.synthetic import SYNTHETIC_PRETRAINED, SYNTHETIC_WEIGHTS
from dferbench_plugins.textsets import descriptors

SHIPPED_JSON = SYNTHETIC_WEIGHTS.with_suffix(".json")


@pytest.fixture(scope="module")
def shipped():
    return create_clip("dferbench-tiny", SYNTHETIC_PRETRAINED)


@pytest.fixture(scope="module")
def heldout():
    # Different counts than the recipe's own held-out set, same held-out identities.
    return pretrain.heldout_set(0, 64, clips_per_class=10, frames_per_clip=4)


def test_shipped_checkpoint_matches_its_json(shipped) -> None:
    info = json.loads(SHIPPED_JSON.read_text())
    assert pretrain.sha256_file(SYNTHETIC_WEIGHTS) == info["sha256"]
    assert info["model"] == "dferbench-tiny"
    assert "python -m dferbench_plugins.synthetic.pretrain" in info["rebuild_command"]
    assert SYNTHETIC_WEIGHTS.with_suffix(".curves.csv").is_file()
    model, _ = shipped
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_synthetic_tag_only_for_tiny_model() -> None:
    with pytest.raises(DferbenchError, match="exists only for model dferbench-tiny"):
        create_clip("dferbench-test-tiny", SYNTHETIC_PRETRAINED)


def test_missing_checkpoint_names_file_and_rebuild_command(monkeypatch, tmp_path) -> None:
    from dferbench.plugin import manager

    registered = manager.clip_models()["dferbench-tiny"]
    missing = dict(registered.extra, weights={SYNTHETIC_PRETRAINED: tmp_path / "dferbench-tiny-synthetic.safetensors"})
    monkeypatch.setattr(manager, "clip_models", lambda: {"dferbench-tiny": dataclasses.replace(registered, extra=missing)})
    pattern = r"dferbench-tiny-synthetic\.safetensors.*python -m dferbench_plugins\.synthetic\.pretrain"
    with pytest.raises(FileNotFoundError, match=pattern):
        create_clip("dferbench-tiny", SYNTHETIC_PRETRAINED)


@torch.no_grad()
def test_image_to_caption_retrieval_well_above_chance(shipped, heldout) -> None:
    model, tokenizer = shipped
    pairs = heldout["pairs"][:100]  # one random frame of each held-out clip, its caption
    images = heldout["images"][[k for k, _ in pairs]]
    hits = 0
    for g in range(0, len(pairs), 50):
        img = F.normalize(model.encode_image(images[g:g + 50]), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer([c for _, c in pairs[g:g + 50]])), dim=-1)
        hits += int(((img @ txt.T).argmax(dim=1) == torch.arange(len(img))).sum())
    assert hits / len(pairs) > 0.15  # chance: 0.02; the shipped checkpoint: 0.36


def test_zero_shot_with_descriptors_above_chance(shipped, heldout) -> None:
    # Shipped checkpoint on this set: 31% (7 classes) and 28% (11); chance 14% and 9%.
    metrics = pretrain.evaluate(*shipped, heldout)
    assert metrics["zs7_desc_uar"] > 100 / 7 + 8
    assert metrics["zs11_desc_uar"] > 100 / 11 + 8


def test_descriptor_words_occur_in_captions() -> None:
    for cls, sentence in descriptors().items():
        missing = set(content_words(sentence)) - CAPTION_VOCABULARY
        assert not missing, f"{cls}: {sorted(missing)} never occur in a caption"


def test_trimmed_text_encoder_matches_open_clip(shipped) -> None:
    model, tokenizer = shipped
    tokens = tokenizer(["a face", "a face with raised eyebrows and a wide open mouth; head turned to the left."])
    with torch.no_grad():
        torch.testing.assert_close(pretrain.encode_text_trimmed(model, tokens), model.encode_text(tokens),
                                   rtol=1e-4, atol=1e-5)


def test_pretraining_identities_disjoint_from_benchmark() -> None:
    bench = set()
    for n_classes in (7, 11):
        ds = make_synthetic_dataset(num_classes=n_classes, seed=0)
        for rec in ds.split(1, "train") + ds.split(1, "test"):
            bench.add(repr(clip_params(rec).identity))  # Identity holds a dict: not hashable
    train_seed, heldout_seed = pretrain.pretrain_generator_seeds(0)
    assert min(train_seed, heldout_seed) >= pretrain.PRETRAIN_SEED_BASE > 10**9
    records = [rec for seed in (train_seed, heldout_seed) for step in range(8)
               for rec, _ in pretrain.batch_specs(seed, step, 128, 4096)]
    ours = [clip_params(rec).identity for rec in records]
    assert len({repr(i) for i in ours}) > 800
    assert not {repr(i) for i in ours} & bench
    # Not even one drawn number in common (the same face width, say): separate random streams.
    bench_widths = {float(r.split("face_w=")[1].split(",")[0]) for r in bench}
    assert len(bench_widths) == len(bench) and not {i.face_w for i in ours} & bench_widths
    for rec, _ in pretrain.batch_specs(train_seed, 0, 8, 4096):
        assert rec.source.startswith(f"synthetic:{train_seed}:")


def test_batches_are_deterministic_and_cover_all_classes() -> None:
    a = pretrain.batch_specs(pretrain.PRETRAIN_SEED_BASE, 3, 256, 4096)
    b = pretrain.batch_specs(pretrain.PRETRAIN_SEED_BASE, 3, 256, 4096)
    assert a == b
    assert len(a) == 128 and all(len(times) == 2 for _, times in a)
    assert {r.label for r, _ in a} == set(range(11))
    assert len({r.source for r, _ in a}) == len(a)  # a fresh clip per pair of frames
    tau = [t / max(r.n_frames - 1, 1) for r, times in a for t in times]
    assert min(tau) < 0.1 and max(tau) > 0.9  # all times in the clip, not only the apex


def _tiny_run(out: Path) -> dict:
    return pretrain.pretrain_clip(out, steps=3, batch_size=12, model_name="dferbench-test-tiny", workers=0,
                                  warmup=2, log_every=1, eval_clips_per_class=1, eval_frames=2)


def test_tiny_pretraining_run_is_deterministic_and_writes_three_files(tmp_path) -> None:
    threads = torch.get_num_threads()
    a = _tiny_run(tmp_path / "a" / "w.safetensors")
    b = _tiny_run(tmp_path / "b" / "w.safetensors")
    assert torch.get_num_threads() == threads
    assert a["sha256"] == b["sha256"]
    for run in ("a", "b"):
        files = sorted(p.name for p in (tmp_path / run).iterdir())
        assert files == ["w.curves.csv", "w.json", "w.safetensors"]
    lines = (tmp_path / "a" / "w.curves.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and len(lines) == 4
    assert "zs7_desc_uar" in lines[0]
    assert a["steps"] == 3 and a["model"] == "dferbench-test-tiny"
    assert np.isfinite(a["final_metrics"]["zs7_desc_uar"])
    assert "--steps 3" in a["rebuild_command"] and "--model-name dferbench-test-tiny" in a["rebuild_command"]
