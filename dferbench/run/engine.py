"""The training and inference loop shared by every torch-based method.

On CUDA it runs fast by default: bf16 autocast on GPUs that compute in bf16
(``train.precision = "fp32"`` turns it off), the data pipeline that ``data.pipeline =
"auto"`` picks (see :mod:`dferbench.data.loader`), persistent workers with pinned memory,
the device-side step of the next batches overlapped with the training step, no
host-device synchronisation inside an epoch, and optionally ``torch.compile``. Under
``torchrun`` it trains with DistributedDataParallel and evaluates each test clip on
exactly one rank (see :mod:`dferbench.run.distributed`). On the CPU the arithmetic is the
plain fp32 loop, step for step.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dferbench.run import distributed as dist
from dferbench.data.loader import ClipSet
from dferbench.errors import DferbenchError
from dferbench.plugin.method import Monitor, require_training_clips
from dferbench.report.metrics import uar as uar_metric
from dferbench.report.metrics import war as war_metric
from dferbench.run.progress import progress
from dferbench.run.resume import TrainingState, UnusableState, load_state, save_state, trained_weights
from dferbench.run.training_log import TrainingLog, format_duration

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DferbenchError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    return name


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise DferbenchError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`effective_precision` says bf16; fp32 otherwise."""
    if effective_precision(device, precision) == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def effective_precision(device: str, precision: str) -> str:
    """``bf16`` or ``fp32``: ``auto`` is bf16 on GPUs with bf16 arithmetic, fp32 elsewhere."""
    _check_precision(precision)
    if not device.startswith("cuda") or precision == "fp32":
        return "fp32"
    return "bf16" if precision == "bf16" or _bf16_in_hardware(device) else "fp32"


def _bf16_in_hardware(device: str) -> bool:
    # Compute capability 8.0 (Ampere) and later; older GPUs (V100, T4) emulate bf16, slowly.
    # Without a visible GPU (the CPU test machine) there is nothing to ask.
    return not torch.cuda.is_available() or torch.cuda.get_device_capability(device)[0] >= 8


def compile_module(module: nn.Module) -> nn.Module:
    """``torch.compile(module)``; ``DFERBENCH_COMPILE_BACKEND`` picks the backend (tests use
    ``eager``)."""
    backend = os.environ.get("DFERBENCH_COMPILE_BACKEND", "inductor")
    return torch.compile(module, backend=backend)


@torch.no_grad()
def predict_module(module: nn.Module, clips: ClipSet, *, batch_size: int, device: str,
                   precision: str = "auto", enabled_progress: bool | None = None) -> np.ndarray:
    """Logits ``[N, C]`` of ``module`` on ``clips`` (test-time sampling, no augmentation).

    In a process group every rank scores its own contiguous shard of the clips and the
    rows are gathered by clip index, so each clip counts exactly once on every rank.
    """
    was_training = module.training
    module.eval()
    for _ in range(2):  # the global-generator draws earlier versions made here (two loader iterators)
        torch.empty((), dtype=torch.int64).random_()
    rank, world = dist.rank_world()
    out: list[np.ndarray] = []
    index: list[np.ndarray] = []
    batches = clips.batches(train=False, batch_size=batch_size, device=device, rank=rank, world=world)
    bar = progress(batches.epoch(0), desc="predict", total=len(batches),
                   enabled=enabled_progress if rank == 0 else False)
    for video, _, idx, _ in bar:
        with autocast(device, precision):
            logits = module(video)
        out.append(logits.float().cpu().numpy())
        index.append(idx.numpy())
    module.train(was_training)
    local = np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
    if world == 1:
        return local
    local_index = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
    return dist.assemble(dist.all_gather_object((local_index, local)), len(clips))


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, video: torch.Tensor, labels: torch.Tensor, *,
               device: str, precision: str, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
               loss_scale: float = 1.0) -> torch.Tensor:
    """One optimisation step; returns the (unscaled, detached) loss without synchronising."""
    with autocast(device, precision):
        loss = loss_fn(net(video).float(), labels)
    optimizer.zero_grad(set_to_none=True)
    (loss * loss_scale if loss_scale != 1.0 else loss).backward()
    optimizer.step()
    return loss.detach()


def wrap_for_training(module: nn.Module, device: str, *, compile: bool = False) -> nn.Module:
    """The module the training loop calls: DDP-wrapped in a process group, compiled on request."""
    _, world = dist.rank_world()
    net = module
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.device(device).index or 0] if device.startswith("cuda") else None
        net = DistributedDataParallel(module, device_ids=device_ids)
    if compile:
        net = compile_module(net)
    return net


def train_module(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train: ClipSet,
    monitor: Monitor,
    *,
    epochs: int,
    batch_size: int,
    device: str,
    seed: int,
    precision: str = "auto",
    eval_batch_size: int = 64,
    drop_last: bool = True,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    compile: bool = False,
) -> dict[str, Any]:
    """Train for ``epochs`` epochs; ``scheduler.step()`` runs once per epoch.

    Under ``best_on_test`` the test clips are scored after every epoch and the weights
    of the epoch with the best WAR are restored at the end (the paper's protocol).

    In a process group of ``world`` ranks ``batch_size`` is the global batch: each rank
    takes ``batch_size / world`` clips of every batch one process would see, and
    DistributedDataParallel averages the gradients, so the steps are those of a single
    process (up to floating-point summation order).

    Each finished epoch is reported as :mod:`dferbench.run.training_log` describes (a
    row in ``monitor.history``, and the line, history file and TensorBoard events the
    monitor asks for). With ``monitor.state_path`` the training state is saved after
    every epoch (:mod:`dferbench.run.resume`) and a training that finds a state of its
    own there resumes after the epoch it records.

    Returns facts to record: epochs run, the selected epoch, seconds per epoch (training
    and scoring), the effective precision and data pipeline (workers, batches finished
    ahead on the device), the number of processes; with a state path, the epoch resumed
    after, the state's size and the seconds per epoch spent saving it.
    """
    _check_precision(precision)
    require_training_clips(train)
    rank, world = dist.rank_world()
    if drop_last and len(train) < batch_size:
        batch_size = len(train)  # a tiny split would otherwise yield no batch at all
    if world > 1 and batch_size % world:
        raise DferbenchError(f"train.batch_size {batch_size} must be divisible by the {world} processes of "
                             "this torchrun job (each takes an equal share of every batch)")
    module.to(device)
    state_key = {"config_hash": monitor.config_hash, "seed": seed, "epochs": epochs}
    state = _resume(monitor, module, optimizer, scheduler, key=state_key, device=device, epochs=epochs)
    monitor.history.extend(state.history)
    net = wrap_for_training(module, device, compile=compile)
    stream = train.batches(train=True, batch_size=batch_size, device=device, seed=seed, drop_last=drop_last,
                           rank=rank, world=world)
    main = rank == 0
    log = TrainingLog(epochs=epochs, history_path=monitor.history_path if main else None,
                      echo=monitor.echo if main else None, tensorboard_dir=monitor.tensorboard_dir if main else None,
                      group_names=[str(g.get("name", i)) for i, g in enumerate(optimizer.param_groups)])
    log.start(state.history)
    resumed_after, state_bytes, state_seconds = state.epoch, 0, 0.0
    show_bar = bool(monitor.progress) and main
    try:
        for epoch in range(state.epoch, epochs):
            started = time.perf_counter()
            lrs = [float(g["lr"]) for g in optimizer.param_groups]
            module.train()
            bar = progress(stream.epoch(epoch), desc=f"epoch {epoch + 1}/{epochs}", total=len(stream),
                           enabled=show_bar)
            postfix = partial(_bar_text, lrs=lrs, pace=_mean_seconds(state.history),
                              later=epochs - epoch - 1) if show_bar else None
            total_sum, n_sum = _train_epoch(net, optimizer, bar, len(stream), device=device, precision=precision,
                                            loss_fn=loss_fn, world=world, epoch=epoch, postfix=postfix)
            if scheduler is not None:
                scheduler.step()
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": total_sum / max(n_sum, 1), "lr": lrs}
            if monitor.selection == "best_on_test" and monitor.test_clips is not None:
                logits = predict_module(module, monitor.test_clips, batch_size=eval_batch_size, device=device,
                                        precision=precision, enabled_progress=False)
                predicted = logits.argmax(1)
                row["test_uar"] = uar_metric(monitor.test_clips.labels, predicted)
                row["test_war"] = war_metric(monitor.test_clips.labels, predicted)
                if row["test_war"] > state.best_war:
                    state.best_war, state.best_epoch = row["test_war"], epoch + 1
                    state.best_weights = trained_weights(module, copy=True)
            row["seconds"] = round(time.perf_counter() - started, 3)
            monitor.log(**row)
            state.history.append(row)
            state.epoch = epoch + 1
            log.epoch(row)
            if monitor.state_path is not None and main:
                saving = time.perf_counter()
                state_bytes = save_state(monitor.state_path, state, module, optimizer, scheduler, key=state_key,
                                         device=device)
                state_seconds += time.perf_counter() - saving
    finally:
        log.close()
    if state.best_weights is not None:
        module.load_state_dict(state.best_weights, strict=False)
    info = {
        "epochs": epochs,
        "selected_epoch": state.best_epoch if state.best_weights is not None else epochs,
        "seconds_per_epoch": _mean_seconds(state.history) or 0.0,
        "precision": effective_precision(device, precision),
        "data_pipeline": stream.pipeline,
        "data_workers": stream.workers,
        "data_prefetch": stream.prefetch,
        "world_size": world,
        "compile": bool(compile),
    }
    if monitor.state_path is not None:
        info.update(resumed_after_epoch=resumed_after, state_bytes=state_bytes,
                    state_seconds_per_epoch=state_seconds / max(epochs - resumed_after, 1))
    return info


def _train_epoch(net: nn.Module, optimizer: torch.optim.Optimizer, batches: Any, n_batches: int, *, device: str,
                 precision: str, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], world: int,
                 epoch: int, postfix: Callable[[float, float, float], str] | None) -> tuple[float, float]:
    """One pass over ``batches``; returns (summed loss x clips, clips) over all ranks.
    ``postfix(running loss, seconds so far, fraction done)`` feeds the progress bar."""
    sync_every_step = device == "cpu" and world == 1  # free on the CPU: stop at the first bad step
    total = torch.zeros((), dtype=torch.float64, device=device)
    bad = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    started = shown = time.perf_counter()
    for step, (video, labels, _, global_size) in enumerate(batches, 1):
        scale = len(labels) * world / global_size
        loss = train_step(net, optimizer, video, labels, device=device, precision=precision,
                          loss_fn=loss_fn, loss_scale=scale)
        if sync_every_step and not torch.isfinite(loss):
            raise DferbenchError(f"training loss became {loss.item()} at epoch {epoch + 1}: "
                                 "lower the learning rate")
        total += loss.double() * len(labels)
        bad += (~torch.isfinite(loss)).double()
        n += len(labels)
        if postfix is not None and (step == 1 or time.perf_counter() - shown > 0.5):  # a host sync twice a second
            shown = time.perf_counter()
            batches.set_postfix_str(postfix(total.item() / max(n, 1), shown - started, step / n_batches))
    total_sum, bad_sum, n_sum = dist.all_reduce_sum([total.item(), bad.item(), float(n)], device)
    if bad_sum or not np.isfinite(total_sum):
        raise DferbenchError(f"training loss became non-finite in epoch {epoch + 1}: lower the learning rate")
    return total_sum, n_sum


def _resume(monitor: Monitor, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, *,
            key: dict[str, Any], device: str, epochs: int) -> TrainingState:
    """The state to go on from: the one at ``monitor.state_path`` when it is this
    training's (said in one line), else a fresh start (with a note saying why)."""
    path = monitor.state_path
    if path is None:
        return TrainingState()
    rank, world = dist.rank_world()
    found = dist.broadcast_object(path.is_file() if rank == 0 else None)
    if not found:
        return TrainingState()
    try:
        state = load_state(path, module, optimizer, scheduler, key=key, device=device)
        problem = ""
    except UnusableState as exc:
        state, problem = TrainingState(), str(exc)
    if world > 1:
        problems = dist.all_gather_object(problem)
        if any(problems) and not all(problems):
            raise DferbenchError(f"the training state {path} is usable by some processes of this job but not by "
                                 f"others ({next(p for p in problems if p)}): put --output on a file system that "
                                 "every process sees")
    if rank == 0:  # one line per job, as for the epochs
        unit = monitor.unit or "training"
        monitor.note(f"note  not resuming {unit} from {path}: {problem}; starting at epoch 1" if problem else
                     f"resuming {unit} after epoch {state.epoch}/{epochs} (training state {path})")
    return state


def _mean_seconds(rows: list[dict[str, Any]]) -> float | None:
    return sum(r["seconds"] for r in rows) / len(rows) if rows else None


def _bar_text(loss: float, elapsed: float, fraction: float, *, lrs: list[float], pace: float | None,
              later: int) -> str:
    """Progress-bar postfix: the epoch's running loss, the learning rates and the time left
    in all: the rest of this epoch (``fraction`` done in ``elapsed`` s), then ``later``
    epochs at ``pace`` s each (the finished epochs' mean; this epoch's pace before any)."""
    this_epoch = elapsed / fraction
    left = this_epoch - elapsed + (pace if pace is not None else this_epoch) * later
    return f"loss {loss:.4g}  lr {'/'.join(f'{lr:.3g}' for lr in lrs)}  eta {format_duration(left)}"
