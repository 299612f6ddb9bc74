"""Accuracy side of ``dferbench bench train``: a short training run in each mode.

:func:`compare_training` trains the same model in the authors' way (``reference``) and
dferbench's (``fast``) for a few epochs on the synthetic benchmark written as JPEG frame
folders, for several seeds, so that a speed-up is shown to leave UAR/WAR unchanged
within seed noise.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dferbench.data.records import ClipRecord
from dferbench.tools.bench_train import MODES, BenchSettings
from dferbench.tools.bench_train import build_network_and_optimizer as build
from dferbench.tools.bench_train import image_size


@dataclass
class CompareSettings:
    device: str = "cpu"
    clip_model: str = "dferbench-tiny"
    pretrained: str | None = "auto"  # auto: the shipped synthetic-face weights of dferbench-tiny if present
    lr_image: float | None = None  # None: the paper's 1e-5
    num_clips: int = 70
    fold: int = 1
    epochs: int = 2
    seeds: list[int] = field(default_factory=lambda: [1])
    batch_size: int = 8
    eval_batch_size: int = 32
    num_frames: int = 8
    render_size: int = 64
    normalize: str = "clip"
    workers: int = 0
    modes: list[str] = field(default_factory=lambda: ["reference", "fast"])


def write_synthetic_frames(root: str | os.PathLike[str], num_clips: int, render_size: int,
                           processes: int = 0) -> Any:
    """The synthetic benchmark (7 classes) as JPEG frame folders under ``root``; returns the
    dataset with its records pointing at the folders and a frame-folder reader."""
    from dferbench.data.readers import FrameFolderReader
    from dferbench.data.records import DFERDataset
    from dferbench.testing import build_dataset

    ds = build_dataset("synthetic", num_clips=num_clips, render_size=render_size)
    root = Path(root)
    seen: dict[str, ClipRecord] = {}
    for fold in ds.folds:
        for split in ("train", "test"):
            for r in ds.split(fold, split):
                seen.setdefault(r.clip_id, r)
    todo = [r for r in seen.values() if not (root / r.clip_id).is_dir()
            or len(list((root / r.clip_id).glob("*.jpg"))) != r.n_frames]
    processes = processes or min(8, os.cpu_count() or 1)
    if processes > 1 and len(todo) > 8:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.starmap(_write_synthetic_clip, [(ds.reader, r, root) for r in todo])
    else:
        for r in todo:
            _write_synthetic_clip(ds.reader, r, root)

    def moved(r: ClipRecord) -> ClipRecord:
        return replace(r, source=str(root / r.clip_id))

    splits = {f: {s: [moved(r) for r in ds.split(f, s)] for s in ("train", "test")} for f in ds.folds}
    return DFERDataset(ds.name, list(ds.classes), splits, FrameFolderReader(), "dfew")


def resolve_pretrained(pretrained: str | None, clip_model: str) -> str | None:
    """``auto``: weights a plugin registered for ``clip_model`` whose file is there (the
    synthetic plugin's face-domain weights for ``dferbench-tiny``: random weights rarely
    beat chance in a few epochs), else random weights."""
    if pretrained != "auto":
        return pretrained or None
    from dferbench.plugin import manager

    spec = manager.clip_models().get(clip_model)
    return next((tag for tag, path in (spec.weights if spec else {}).items() if Path(path).is_file()), None)


def _write_synthetic_clip(reader: Any, record: ClipRecord, root: Path) -> None:
    from PIL import Image

    folder = root / record.clip_id
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(reader(record, range(record.n_frames))):
        Image.fromarray(frame).save(folder / f"{i + 1:05d}.jpg", quality=95)


def compare_training(settings: CompareSettings | None = None, *, root: str | os.PathLike[str] | None = None,
                     echo: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """UAR/WAR after ``epochs`` epochs of DFER-CLIP in each mode, one row per (mode, seed).

    Both modes see the same clips with the same sampled frames and augmentation
    parameters (DFEW's brightness, crop, flip) in the same order; they differ in the
    precision, the optimiser kernel and the pixel arithmetic of the pipelines.
    """
    from dferbench.data.loader import ClipSet
    from dferbench.run.engine import predict_module, train_module
    from dferbench.plugin.method import Monitor
    from dferbench.report.metrics import compute_metrics

    s = settings or CompareSettings()
    pretrained = resolve_pretrained(s.pretrained, s.clip_model)
    lrs = {"lr_image": s.lr_image} if s.lr_image is not None else {}
    if root is None:
        with tempfile.TemporaryDirectory() as tmp:
            return compare_training(s, root=tmp, echo=echo)
    ds = write_synthetic_frames(Path(root) / "synthetic", s.num_clips, s.render_size)
    rows = []
    for seed in s.seeds:
        for name in s.modes:
            mode = MODES[name]
            bench = BenchSettings(device=s.device, clip_model=s.clip_model, num_frames=s.num_frames, seed=seed)
            model, optimizer = build(bench, mode, pretrained=pretrained, lrs=lrs)
            size = image_size(model)

            def clipset(split: str) -> ClipSet:
                return ClipSet("synthetic", ds.split(s.fold, split), ds.reader, num_frames=s.num_frames, image_size=size,
                               normalize=s.normalize, augmentation="dfew" if split == "train" else "none",
                               workers=s.workers, pipeline=mode["pipeline"])

            start = time.perf_counter()
            train_module(model, optimizer, None, clipset("train"), Monitor("last_epoch"), epochs=s.epochs,
                         batch_size=s.batch_size, device=s.device, seed=seed, precision=mode["precision"],
                         compile=mode["compile"])
            test = clipset("test")
            logits = predict_module(model, test, batch_size=s.eval_batch_size, device=s.device,
                                    precision=mode["precision"], enabled_progress=False)
            m = compute_metrics(test.labels, logits)
            rows.append({"mode": name, "seed": seed, "uar": round(m["uar"], 2), "war": round(m["war"], 2),
                         "seconds": round(time.perf_counter() - start, 1), "weights": pretrained or "random"})
            if echo:
                echo(f"bench train accuracy: {name} seed {seed}: UAR {m['uar']:.2f} WAR {m['war']:.2f}")
            del model, optimizer
            gc.collect()
    return rows


def summarize_accuracy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per mode, and the paired fast-minus-reference gap."""
    out = []
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    for name in modes:
        mine = [r for r in rows if r["mode"] == name]
        row: dict[str, Any] = {"mode": name, "seeds": len(mine)}
        for metric in ("uar", "war"):
            values = np.array([r[metric] for r in mine])
            row[f"{metric}_mean"] = round(float(values.mean()), 2)
            row[f"{metric}_std"] = round(float(values.std(ddof=1)), 2) if len(values) > 1 else None
        out.append(row)
    if len(modes) == 2:
        a, b = modes
        for metric in ("uar", "war"):
            gaps = [rb[metric] - ra[metric] for ra in rows if ra["mode"] == a
                    for rb in rows if rb["mode"] == b and rb["seed"] == ra["seed"]]
            out[1][f"{metric}_gap_vs_{a}"] = round(float(np.mean(gaps)), 2)
    return out
