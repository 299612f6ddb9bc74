"""Multi-process training of one unit (``torchrun ... -m dferbench run``).

``torchrun --nproc-per-node N -m dferbench run ...`` starts N copies of the command with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set. :func:`init_from_env` joins them into one
process group (NCCL on CUDA, gloo on CPU); the engine then trains with
DistributedDataParallel, each rank taking ``batch_size / world`` clips of every global
batch, and evaluates each test clip on exactly one rank. Only rank 0 prints and writes
result files. Without those variables everything here is a no-op (rank 0 of 1).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the current process group, ``(0, 1)`` without one."""
    if is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    if is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def init_from_env(device: str) -> str:
    """Join the process group that ``torchrun`` describes; return the device of this rank.

    ``device`` is the resolved device of the run (``cpu``, ``cuda``, ``cuda:K``). On CUDA
    each rank takes GPU ``LOCAL_RANK`` and the NCCL backend; on CPU the gloo backend.
    Returns ``device`` unchanged when not launched by torchrun (or with one process).
    """
    if env_world_size() <= 1:
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return device


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (identity without a process group)."""
    if not is_initialized():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def all_reduce_sum(values: list[float], device: str) -> list[float]:
    """Element-wise sum over ranks of a few float64 numbers."""
    if not is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device if device.startswith("cuda") else "cpu")
    torch.distributed.all_reduce(t)
    return t.tolist()


def assemble(parts: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """Rows ``[n, C]`` from every rank's ``(clip indices, rows)``, each clip exactly once.

    Duplicates (a sampler that pads shards to equal length repeats clips) keep their
    first copy; a clip that no rank scored is an error, so padding can never leak into
    or go missing from UAR/WAR.
    """
    width = next((rows.shape[1] for _, rows in parts if rows.ndim == 2 and len(rows)), 0)
    out = np.zeros((n, width), dtype=np.float32)
    seen = np.zeros(n, dtype=bool)
    for index, rows in parts:
        for i, row in zip(np.asarray(index, dtype=np.int64), rows):
            if not seen[i]:
                out[i] = row
                seen[i] = True
    if not seen.all():
        missing = np.flatnonzero(~seen)[:5].tolist()
        raise RuntimeError(f"distributed evaluation lost clips {missing} (of {n}); this is a bug in dferbench")
    return out
