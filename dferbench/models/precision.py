"""Class scores in fp32, also under bf16 autocast."""

from __future__ import annotations

import contextlib

import torch


def full_precision(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on ``tensor``'s device, for the layer that makes the logits.

    Under bf16 autocast a matmul returns bf16: logits of 20 to 30 (cosine / 0.01, or
    CLIP's 100 x cosine) would be rounded to steps of 0.125, close enough for ties at the
    argmax, which go to the lowest class index. Callers pass fp32 inputs. A no-op on the
    CPU, where dferbench runs without autocast.
    """
    return torch.autocast(tensor.device.type, enabled=False)
