"""The training and inference loop shared by every torch-based method."""

from __future__ import annotations

import contextlib
import copy
import random
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dferbench.data.loader import ClipSet
from dferbench.method import Monitor
from dferbench.metrics import war as war_metric
from dferbench.progress import progress


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        from dferbench.errors import DferbenchError

        raise DferbenchError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    return name


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``precision`` is ``bf16`` (or ``auto``); fp32 otherwise."""
    if device.startswith("cuda") and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def effective_precision(device: str, precision: str) -> str:
    return "bf16" if device.startswith("cuda") and precision in ("auto", "bf16") else "fp32"


@torch.no_grad()
def predict_module(module: nn.Module, clips: ClipSet, *, batch_size: int, device: str,
                   precision: str = "auto", enabled_progress: bool | None = None) -> np.ndarray:
    """Logits ``[N, C]`` of ``module`` on ``clips`` (test-time sampling, no augmentation)."""
    was_training = module.training
    module.eval()
    out: list[np.ndarray] = []
    batches = clips.loader(train=False, batch_size=batch_size)
    for video, _, _ in progress(batches, desc="predict", total=len(batches), enabled=enabled_progress):
        with autocast(device, precision):
            logits = module(video.to(device, non_blocking=True))
        out.append(logits.float().cpu().numpy())
    module.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


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
) -> dict[str, Any]:
    """Train for ``epochs`` epochs; ``scheduler.step()`` runs once per epoch.

    Under ``best_on_test`` the test clips are scored after every epoch and the weights
    of the epoch with the best WAR are restored at the end (the paper's protocol).
    Returns facts to record: epochs run, the selected epoch, seconds per epoch.
    """
    if drop_last and len(train) < batch_size:
        batch_size = len(train)  # a tiny split would otherwise yield no batch at all
    module.to(device)
    best_war, best_epoch, best_state = -1.0, epochs, None
    start = time.perf_counter()
    for epoch in range(epochs):
        module.train()
        batches = train.loader(train=True, batch_size=batch_size, seed=seed, epoch=epoch, drop_last=drop_last)
        total, n = 0.0, 0
        bar = progress(batches, desc=f"epoch {epoch + 1}/{epochs}", total=len(batches), enabled=monitor.progress)
        for video, labels, _ in bar:
            video, labels = video.to(device, non_blocking=True), labels.to(device)
            with autocast(device, precision):
                loss = loss_fn(module(video).float(), labels)
            if not torch.isfinite(loss):
                from dferbench.errors import DferbenchError

                raise DferbenchError(f"training loss became {loss.item()} at epoch {epoch + 1}: lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            n += len(labels)
        if scheduler is not None:
            scheduler.step()
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": total / max(n, 1)}
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
    }
