"""Resumable training: the state of a unit's training after a finished epoch, on disk.

After every epoch :func:`save_state` writes, atomically, everything the next epoch
depends on: the weights that train (parameters with ``requires_grad`` and all buffers;
the frozen parameters are rebuilt by the method as it built them the first time), the
optimiser and the scheduler, the random generators of torch, numpy and Python, the
history and, under ``best_on_test``, the best epoch so far and its weights. The clip
order of an epoch is a function of ``(seed, epoch)`` alone (see
:func:`dferbench.data.loader.shuffled_order`), so the seed and the epoch count are all
the data order needs. A unit started again by the same command resumes after the last
finished epoch and, on the CPU, computes exactly what it would have without the stop.

The file is read with ``torch.load(weights_only=True)``: tensors and plain containers,
never pickled code. Neither saving nor loading draws from a random generator.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dferbench.files import replacing

FORMAT = 1


@dataclass
class TrainingState:
    """Where training stands after ``epoch`` finished epochs (1-based count)."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_war: float = -1.0
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None


def trained_weights(module: nn.Module, *, copy: bool = False) -> dict[str, torch.Tensor]:
    """The entries of ``module.state_dict()`` that training can change: every buffer and
    every parameter with ``requires_grad``. ``copy`` detaches them from the module."""
    frozen = {name for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}
    out = {}
    for name, value in module.state_dict().items():
        if name in frozen:
            continue
        # A view (a buffer sliced from an embedding) would save its whole storage.
        if copy or value.untyped_storage().nbytes() != value.numel() * value.element_size():
            value = value.detach().clone()
        out[name] = value
    return out


def rng_states(device: str) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {**np_state, "state": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                                        "pos": int(np_state["state"]["pos"])}},
        "python": random.getstate(),
    }
    if device.startswith("cuda"):
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, Any], device: str) -> None:
    torch.set_rng_state(states["torch"])
    np_state = dict(states["numpy"])
    np_state["state"] = {"key": states["numpy"]["state"]["key"].numpy().astype(np.uint32),
                         "pos": states["numpy"]["state"]["pos"]}
    np.random.set_state(np_state)
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.startswith("cuda") and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def save_state(path: Path, state: TrainingState, module: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any, *, key: dict[str, Any], device: str) -> int:
    """Write the state after ``state.epoch`` epochs to ``path`` atomically; returns its size
    in bytes. ``key`` (config hash, seed, epochs) says which training this state belongs to."""
    blob = {
        "format": FORMAT,
        "key": key,
        "epoch": state.epoch,
        "history": state.history,
        "weights": trained_weights(module),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_states(device),
        "best": {"war": state.best_war, "epoch": state.best_epoch, "weights": state.best_weights},
    }
    with replacing(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(blob, f)
            f.flush()
            os.fsync(f.fileno())
    return path.stat().st_size


class UnusableState(Exception):
    """A state file that is not this training's: the message says why."""


def load_state(path: Path, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, *,
               key: dict[str, Any], device: str) -> TrainingState:
    """Restore module, optimiser, scheduler and random generators from ``path``.

    Raises :class:`UnusableState` (and changes nothing) when the file cannot be read or
    belongs to another training: another config hash, seed or epoch count, other
    trainable tensors, other optimiser groups."""
    if path.stat().st_size == 0:
        raise UnusableState("it cannot be read (the file is empty)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated by hand, pickled code
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise UnusableState(f"it cannot be read ({type(exc).__name__}{': ' + first if first else ''})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UnusableState(f"it is not a dferbench training state of format {FORMAT}")
    theirs = blob["key"]
    for name, value in key.items():
        if theirs.get(name) != value:
            what = "config hash" if name == "config_hash" else name
            raise UnusableState(f"it is from a different {what} ({theirs.get(name)}, this run {value})")
    _check_weights(blob["weights"], module)
    _check_optimizer(blob["optimizer"], optimizer)
    module.load_state_dict(blob["weights"], strict=False)
    optimizer.load_state_dict(blob["optimizer"])
    if scheduler is not None and blob["scheduler"] is not None:
        scheduler.load_state_dict(blob["scheduler"])
    set_rng_states(blob["rng"], device)
    best = blob["best"]
    return TrainingState(epoch=blob["epoch"], history=blob["history"], best_war=best["war"],
                         best_epoch=best["epoch"], best_weights=best["weights"])


def _check_weights(weights: dict[str, torch.Tensor], module: nn.Module) -> None:
    expected = trained_weights(module)
    if set(weights) != set(expected):
        extra, missing = sorted(set(weights) - set(expected)), sorted(set(expected) - set(weights))
        raise UnusableState(f"its trained tensors differ from this model's (unexpected {extra[:3]}, "
                            f"missing {missing[:3]})")
    for name, value in weights.items():
        if value.shape != expected[name].shape:
            raise UnusableState(f"tensor {name} has shape {tuple(value.shape)}, the model's is "
                                f"{tuple(expected[name].shape)}")


def _check_optimizer(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    sizes = [len(g["params"]) for g in saved["param_groups"]]
    ours = [len(g["params"]) for g in optimizer.param_groups]
    if sizes != ours:
        raise UnusableState(f"its optimiser has parameter groups of sizes {sizes}, this run's {ours}")
