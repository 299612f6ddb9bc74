"""Finish batches for the device ahead of time, in a background thread.

The last step of every pipeline runs in the training process: moving the batch to the
GPU and, for the ``gpu`` pipeline, decoding and augmenting it there. Done inline, the
GPU waits for it at every step. :func:`prefetched` runs that step for the next batches in
a thread, on a CUDA stream of its own, while the main thread runs the current step; the
torch and nvJPEG calls release the GIL, so the two overlap. The consumer's stream waits
for a batch's event before using it, and the batch's memory is marked as used by that
stream so the allocator does not hand it back to the side stream too early.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)


def prefetched(items: Iterable[T], finish: Callable[[T], R], *, device: str, depth: int) -> Iterator[R]:
    """``finish(item)`` for each of ``items``, in order, computed up to ``depth`` items
    ahead in a background thread (``depth = 0``: inline, no thread).

    An exception raised by ``items`` or ``finish`` is raised here, at the item where it
    happened. Closing the returned iterator early stops the thread.
    """
    if depth <= 0:
        for item in items:
            yield finish(item)
        return
    index = stream = None
    if device.startswith("cuda"):
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        stream = torch.cuda.Stream(index)
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            if stream is not None:
                torch.cuda.set_device(index)  # a new thread starts on device 0
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for item in items:
                    out = finish(item)
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()
                        event.record(stream)
                    if not put((out, event)):
                        return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="dferbench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = ready.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            out, event = value
            if event is not None:
                current = torch.cuda.current_stream(index)
                current.wait_event(event)
                for tensor in _tensors(out):
                    if tensor.is_cuda:
                        tensor.record_stream(current)
            yield out
    finally:
        stop.set()
        thread.join()
