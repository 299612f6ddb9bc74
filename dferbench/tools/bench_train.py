"""Training benchmark: the authors' way of training DFER-CLIP against dferbench's, side by side.

``dferbench bench train`` trains the same model (same random initialisation), with the
same batch, on the same device and the same JPEG frame folders written to disk, in
several modes, one after the other in one process:

* ``reference`` -- what the authors' script does: fp32, each sampled frame opened with
  PIL and transformed frame by frame (:mod:`dferbench.data.reference`), default collate,
  PyTorch's default SGD, ``loss.item()`` after every step.
* ``fast`` -- dferbench's defaults: bf16 autocast on CUDA, fused SGD on CUDA, only the
  sampled frames decoded, ``data.pipeline=auto`` (libjpeg-turbo in the workers + one
  pass over the stacked uint8 clip; JPEG decode + augmentation on the GPU when CUDA has
  fewer than 4 workers), pinned memory, persistent workers with deep prefetching, the
  device-side step of the next batches overlapped with the training step on CUDA, no
  per-step synchronisation.
* ``fast-cpu-decode`` / ``fast-gpu-decode`` -- ``fast`` with the ``cpu`` / ``gpu``
  pipeline whatever the workers.
* ``fast-compile`` -- ``fast`` plus ``torch.compile``.
* ``model-only-fp32`` / ``model-only-bf16`` -- no data loading at all (one random batch
  already on the device): the ceiling the input pipeline is measured against.

Every mode runs ``warmup`` untimed steps, then ``steps`` timed ones; clips/s counts the
whole loop, input included; ``eval_clips_per_s`` times ``eval_steps`` test-time batches
(no augmentation, no gradients) after the training steps. Peak memory is the GPU's peak
allocation on CUDA and the training process's peak resident set on the CPU (sampled;
DataLoader workers not counted). On the CPU, subnormal floats are flushed to zero while
timing (they make random steps 10x slower there).

:func:`dferbench.tools.bench_accuracy.compare_training` trains both modes for a few
epochs on the synthetic benchmark written as JPEG folders, for several seeds, to show that
the fast path leaves UAR/WAR unchanged within seed noise.
"""

from __future__ import annotations

import gc
import itertools
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from dferbench.data.classes import DFEW_CLASSES
from dferbench.data.records import ClipRecord

MODES: dict[str, dict[str, Any]] = {
    "reference": {"precision": "fp32", "pipeline": "reference", "fused": False, "compile": False, "sync": True},
    "fast": {"precision": "auto", "pipeline": "auto", "fused": None, "compile": False, "sync": False},
    "fast-cpu-decode": {"precision": "auto", "pipeline": "cpu", "fused": None, "compile": False, "sync": False},
    "fast-gpu-decode": {"precision": "auto", "pipeline": "gpu", "fused": None, "compile": False, "sync": False},
    "fast-compile": {"precision": "auto", "pipeline": "auto", "fused": None, "compile": True, "sync": False},
    "model-only-fp32": {"precision": "fp32", "pipeline": None, "fused": False, "compile": False, "sync": True},
    "model-only-bf16": {"precision": "auto", "pipeline": None, "fused": None, "compile": False, "sync": False},
}

@dataclass
class BenchSettings:
    """What one benchmark run measures. ``defaults(device)`` fills in the rest."""

    device: str = "cpu"
    model: str = "dferclip"
    clip_model: str = "dferbench-tiny"
    batch_size: int = 8
    num_frames: int = 8
    steps: int = 4
    warmup: int = 1
    workers: int = 0
    prefetch: int = -1  # batches finished ahead on the device (-1 auto); the reference mode never does
    augmentation: str = "dfew"
    frame_size: int = 224  # the JPEGs on disk (face crops are 224 x 224)
    n_frames: int = 32  # frames of each clip on disk
    clips: int = 0  # 0 = (warmup + steps) batches: the timed window stays inside one epoch
    seed: int = 1
    eval_steps: int = 2  # inference batches timed after training (0 = none)
    modes: list[str] = field(default_factory=lambda: ["reference", "fast"])


def defaults(device: str) -> BenchSettings:
    """CPU: the tiny CLIP, small batches (runs in the test suite). CUDA: the paper's setting,
    ViT-B/32 with random weights, batch 48 x 16 frames."""
    if device.startswith("cuda"):
        from dferbench.data.loader import resolve_workers

        return BenchSettings(device=device, clip_model="ViT-B-32-quickgelu", batch_size=48, num_frames=16, steps=20,
                             warmup=5, eval_steps=10, workers=resolve_workers(-1, device))
    return BenchSettings(device=device)


class _PeakRSS:
    """Peak resident set of this process while in the ``with`` block (sampled every 5 ms)."""

    def __enter__(self) -> _PeakRSS:
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # pragma: no cover - not Linux
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def build_network_and_optimizer(settings: BenchSettings, mode: dict[str, Any], pretrained: str | None = None,
           lrs: dict[str, float] | None = None) -> tuple[Any, Any]:
    from dferbench import api
    from dferbench.plugin import manager
    from dferbench.run.engine import seed_everything

    seed_everything(settings.seed)
    model = api.build_model(settings.model, class_texts=[f"a face showing {c}." for c in DFEW_CLASSES],
                            clip_model=settings.clip_model, pretrained=pretrained, num_frames=settings.num_frames,
                            device=settings.device)
    if manager.get("model", settings.model).optimizer is not None:  # the model's own, as it trains
        optimizer, _ = api.build_optimizer(settings.model, model, fused=mode["fused"], **(lrs or {}))
    else:
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    return model, optimizer


def image_size(model: Any) -> int:
    from dferbench.models.clip import clip_input_size

    return clip_input_size(getattr(model, "image_encoder", model))


def _endless(stream: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for epoch in itertools.count():
        for video, labels, _, _ in stream.epoch(epoch):
            yield video, labels


def run_mode(name: str, settings: BenchSettings, records: list[ClipRecord]) -> dict[str, Any]:
    """Time ``settings.steps`` training steps of mode ``name``; one result row."""
    from dferbench.data.loader import ClipSet
    from dferbench.data.readers import FrameFolderReader
    from dferbench.run.engine import effective_precision, train_step, wrap_for_training

    mode = MODES[name]
    device = settings.device
    model, optimizer = build_network_and_optimizer(settings, mode)
    size = image_size(model)
    net = wrap_for_training(model, device, compile=mode["compile"])
    model.train()
    pipeline, workers, prefetch = "none", 0, 0
    if mode["pipeline"] is None:
        g = torch.Generator().manual_seed(settings.seed)
        video = torch.rand(settings.batch_size, settings.num_frames, 3, size, size, generator=g).to(device)
        labels = torch.randint(len(DFEW_CLASSES), (settings.batch_size,), generator=g).to(device)
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = itertools.repeat((video, labels))
    else:
        clips = ClipSet("bench", records, FrameFolderReader(), num_frames=settings.num_frames, image_size=size,
                        normalize="none", augmentation=settings.augmentation, workers=settings.workers,
                        pipeline=mode["pipeline"], prefetch=_prefetch(settings, mode))
        stream = clips.batches(train=True, batch_size=settings.batch_size, device=device, seed=settings.seed,
                               drop_last=True)
        pipeline, workers, prefetch = stream.pipeline, stream.workers, stream.prefetch
        batches = _endless(stream)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    eval_batches = _eval_batches(settings, mode, records, size, video if mode["pipeline"] is None else None)
    input_s = 0.0
    with _PeakRSS() as rss:
        for step in range(settings.warmup + settings.steps):
            if step == settings.warmup:
                _sync(device)
                start, input_s = time.perf_counter(), 0.0
            t0 = time.perf_counter()
            video, labels = next(batches)
            input_s += time.perf_counter() - t0
            loss = train_step(net, optimizer, video, labels, device=device, precision=mode["precision"])
            if mode["sync"]:
                loss.item()  # the authors' script logs loss.item() every step
        _sync(device)
        seconds = time.perf_counter() - start
    loss_value = float(loss.item())
    peak = torch.cuda.max_memory_allocated(device) if device.startswith("cuda") else rss.peak
    eval_seconds = _time_eval(model, eval_batches, settings, mode["precision"])
    del batches, eval_batches, net, model, optimizer
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    n = settings.steps * settings.batch_size
    return {
        "mode": name,
        "precision": effective_precision(device, mode["precision"]),
        "pipeline": pipeline,
        "workers": workers,
        "prefetch": prefetch,
        "compile": mode["compile"],
        "ms_per_step": round(1000 * seconds / settings.steps, 1),
        "clips_per_s": round(n / seconds, 1),
        "input_ms_per_step": round(1000 * input_s / settings.steps, 1),
        "eval_clips_per_s": round(settings.eval_steps * settings.batch_size / eval_seconds, 1)
        if settings.eval_steps else None,
        "peak_mem_mb": round(peak / 2**20),
        "final_loss": round(loss_value, 4),
    }


def _prefetch(settings: BenchSettings, mode: dict[str, Any]) -> int:
    return 0 if mode["pipeline"] == "reference" else settings.prefetch


def _eval_batches(settings: BenchSettings, mode: dict[str, Any], records: list[ClipRecord], size: int,
                  video: torch.Tensor | None) -> Iterator[torch.Tensor]:
    """Test-time batches (no augmentation) through the mode's pipeline, for the eval timing."""
    if not settings.eval_steps:
        return iter(())
    if video is not None:
        return itertools.repeat(video)
    from dferbench.data.loader import ClipSet
    from dferbench.data.readers import FrameFolderReader

    clips = ClipSet("bench", records, FrameFolderReader(), num_frames=settings.num_frames, image_size=size,
                    normalize="none", augmentation="none", workers=settings.workers, pipeline=mode["pipeline"],
                    prefetch=_prefetch(settings, mode))
    stream = clips.batches(train=False, batch_size=settings.batch_size, device=settings.device, persistent=True)
    return (video for epoch in itertools.count() for video, *_ in stream.epoch(0))


@torch.no_grad()
def _time_eval(model: Any, batches: Iterator[torch.Tensor], settings: BenchSettings, precision: str) -> float:
    """Seconds for ``settings.eval_steps`` inference batches (after one untimed batch), of
    the uncompiled module, which is also what the engine evaluates with ``train.compile``."""
    from dferbench.run.engine import autocast

    if not settings.eval_steps:
        return 0.0
    model.eval()
    device = settings.device
    for step in range(settings.eval_steps + 1):
        if step == 1:
            _sync(device)
            start = time.perf_counter()
        with autocast(device, precision):
            model(next(batches))
    _sync(device)
    return time.perf_counter() - start


def environment(device: str) -> dict[str, Any]:
    """Where the numbers come from: card or CPU, library versions."""
    import torchvision

    info = {"device": device, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "cpus": os.cpu_count()}
    if device.startswith("cuda"):
        info["card"] = torch.cuda.get_device_name(device)
    else:
        info["card"] = platform.processor() or platform.machine()
    return info


def benchmark_training(settings: BenchSettings | None = None, *, root: str | os.PathLike[str] | None = None,
                       echo: Callable[[str], None] | None = None,
                       on_row: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """One row per mode of ``settings.modes``; ``speedup`` is relative to the first mode.

    The frame folders go to ``root`` (kept and reused) or a temporary folder. A mode that
    fails gets a row with its ``error`` and the next mode runs: on a borrowed GPU one
    broken mode must not cost the others' numbers. ``on_row(rows)`` is called after each
    mode with the rows so far (a caller saves them, should the run be cut short).
    """
    settings = settings or defaults("cpu")
    unknown = [m for m in settings.modes if m not in MODES]
    if unknown:
        from dferbench.errors import DferbenchError

        raise DferbenchError(f"unknown benchmark mode(s) {unknown}; valid: {', '.join(MODES)}")
    if root is None:
        with tempfile.TemporaryDirectory() as tmp:
            return benchmark_training(settings, root=tmp, echo=echo, on_row=on_row)
    from dferbench.tools.bench_data import write_frame_folders

    clips = settings.clips or (settings.warmup + settings.steps) * settings.batch_size
    records = write_frame_folders(Path(root) / "frames", clips, settings.n_frames, settings.frame_size)
    rows: list[dict[str, Any]] = []
    # On the CPU, subnormal floats (a saturated softmax at temperature 0.01 makes them in the
    # backward pass) slow single steps down 10x at random; flushing them to zero keeps the
    # timings comparable between modes. GPUs do not slow down on them.
    flush = torch.set_flush_denormal(True) if not settings.device.startswith("cuda") else False
    try:
        for name in settings.modes:
            if echo:
                echo(f"bench train: {name} ...")
            try:
                row = run_mode(name, settings, records)
            except Exception as exc:  # noqa: BLE001 - reported in the row and by the caller
                row = {"mode": name, "error": f"{type(exc).__name__}: {exc}"}
                gc.collect()
                if settings.device.startswith("cuda"):
                    torch.cuda.empty_cache()
            rows.append({**row, "batch": settings.batch_size, "num_frames": settings.num_frames,
                         "clip_model": settings.clip_model, "device": settings.device})
            _speedups(rows)
            if echo:
                echo(f"bench train: {name}: " + (f"FAILED ({row['error']})" if "error" in row else
                                                 f"{row['clips_per_s']} clips/s, {row['ms_per_step']} ms/step"))
            if on_row:
                on_row(rows)
    finally:
        if flush:
            torch.set_flush_denormal(False)
    return rows


def _speedups(rows: list[dict[str, Any]]) -> None:
    base = rows[0].get("clips_per_s")
    for row in rows:
        if "clips_per_s" in row:
            row["speedup"] = round(row["clips_per_s"] / base, 2) if base else None


def format_table(rows: list[dict[str, Any]], keys: list[str] | None = None) -> str:
    from tabulate import tabulate

    keys = keys or list(dict.fromkeys(k for r in rows for k in r))
    return tabulate([[r.get(k, "") for k in keys] for r in rows], headers=keys, tablefmt="pipe")


TIMING_KEYS = ["mode", "device", "clip_model", "batch", "num_frames", "precision", "pipeline", "workers", "prefetch",
               "ms_per_step", "clips_per_s", "speedup", "input_ms_per_step", "peak_mem_mb", "eval_clips_per_s"]


def timing_table(rows: list[dict[str, Any]]) -> str:
    """The timing rows as Markdown, with an ``error`` column when a mode failed."""
    failed = any("error" in r for r in rows)
    return format_table(rows, TIMING_KEYS + (["error"] if failed else []))


def settings_dict(settings: Any) -> dict[str, Any]:
    return asdict(settings)


if __name__ == "__main__":  # `python -m dferbench.tools.bench_train summarize REPORT.json ...` (scripts/gpu_check.sh)
    from dferbench.tools.bench_report import main

    main()
