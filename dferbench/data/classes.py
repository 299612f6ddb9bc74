"""The class orders of the DFER benchmarks, defined once.

DFEW and FERV39k (as DFER-CLIP orders it) share seven classes; MAFW adds four. Label ids
in every annotation file, result and leaderboard index these lists (copy one before changing it).
"""

from __future__ import annotations

DFEW_CLASSES: list[str] = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
"""DFEW's seven classes in label order (DFER-CLIP's annotation files; FERV39k uses it too)."""

MAFW_CLASSES: list[str] = DFEW_CLASSES + ["contempt", "anxiety", "helplessness", "disappointment"]
"""MAFW's eleven single-label classes in label order."""

EMOTIONS: tuple[str, ...] = tuple(MAFW_CLASSES)
"""The canonical emotion names: DFEW's and FERV39k's 7 classes, then MAFW's 4 more. Datasets
name their classes by these (:attr:`dferbench.DFERDataset.emotions`) so that a model trained
on one dataset can be scored on another over the classes both have."""
