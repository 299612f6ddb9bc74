"""Text classifiers for zero-shot classification, CLIP_benchmark's way."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def text_classifier(model: nn.Module, tokenizer, texts: list[list[str]], *, device: str = "cpu") -> np.ndarray:
    """``[D, C]``: per class, encode every sentence, L2-normalise each, average,
    re-normalise."""
    columns = []
    for sentences in texts:
        feats = model.encode_text(tokenizer(sentences).to(device)).float()
        feats = feats / feats.norm(dim=-1, keepdim=True)
        mean = feats.mean(dim=0)
        columns.append(mean / mean.norm())
    return torch.stack(columns, dim=1).cpu().numpy()
