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
import copy
import os
import random
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dferbench.run import distributed as dist
from dferbench.run.config import PRECISIONS
from dferbench.data.loader import ClipSet
from dferbench.errors import DferbenchError
from dferbench.plugin.method import Monitor, require_training_clips
from dferbench.report.metrics import war as war_metric
from dferbench.run.progress import progress


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

    Returns facts to record: epochs run, the selected epoch, seconds per epoch, the
    effective precision and data pipeline (workers, batches finished ahead on the device),
    the number of processes.
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
    net = wrap_for_training(module, device, compile=compile)
    stream = train.batches(train=True, batch_size=batch_size, device=device, seed=seed, drop_last=drop_last,
                           rank=rank, world=world)
    sync_every_step = device == "cpu" and world == 1  # free on the CPU: stop at the first bad step
    best_war, best_epoch, best_state = -1.0, epochs, None
    start = time.perf_counter()
    for epoch in range(epochs):
        module.train()
        total = torch.zeros((), dtype=torch.float64, device=device)
        bad = torch.zeros((), dtype=torch.float64, device=device)
        n = 0
        bar = progress(stream.epoch(epoch), desc=f"epoch {epoch + 1}/{epochs}", total=len(stream),
                       enabled=monitor.progress if rank == 0 else False)
        for video, labels, _, global_size in bar:
            scale = len(labels) * world / global_size
            loss = train_step(net, optimizer, video, labels, device=device, precision=precision,
                              loss_fn=loss_fn, loss_scale=scale)
            if sync_every_step and not torch.isfinite(loss):
                raise DferbenchError(f"training loss became {loss.item()} at epoch {epoch + 1}: "
                                     "lower the learning rate")
            total += loss.double() * len(labels)
            bad += (~torch.isfinite(loss)).double()
            n += len(labels)
        total_sum, bad_sum, n_sum = dist.all_reduce_sum([total.item(), bad.item(), float(n)], device)
        if bad_sum or not np.isfinite(total_sum):
            raise DferbenchError(f"training loss became non-finite in epoch {epoch + 1}: lower the learning rate")
        if scheduler is not None:
            scheduler.step()
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": total_sum / max(n_sum, 1)}
        if monitor.selection == "best_on_test" and monitor.test_clips is not None:
            logits = predict_module(module, monitor.test_clips, batch_size=eval_batch_size, device=device,
                                    precision=precision, enabled_progress=False)
            row["test_war"] = war_metric(monitor.test_clips.labels, logits.argmax(1))
            if row["test_war"] > best_war:
                best_war, best_epoch = row["test_war"], epoch + 1
                best_state = copy.deepcopy(module.state_dict())
        monitor.log(**row)
    if best_state is not None:
        module.load_state_dict(best_state)
    return {
        "epochs": epochs,
        "selected_epoch": best_epoch,
        "seconds_per_epoch": (time.perf_counter() - start) / max(epochs, 1),
        "precision": effective_precision(device, precision),
        "data_pipeline": stream.pipeline,
        "data_workers": stream.workers,
        "data_prefetch": stream.prefetch,
        "world_size": world,
        "compile": bool(compile),
    }
