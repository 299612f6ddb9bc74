"""Confusion-matrix figures of leaderboard rows (PNG, at least 800 px wide), written atomically.

A figure records what it was drawn from (a digest in the PNG's text chunk ``dferbench``), so a
rebuild over unchanged results leaves it alone instead of drawing it again.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from dferbench.files import replacing

DPI = 100
STYLE = 2  # raise when the drawing changes, so that every figure is drawn again


def clips_per_class(row: dict[str, Any]) -> np.ndarray:
    """Test clips of each class over the row's folds, each clip once (the first unit of each fold:
    the seeds of a fold score the same clips). ``[n_classes]`` integers."""
    first: dict[int, Any] = {}
    for unit in row["units"]:
        first.setdefault(unit["fold"], unit)
    return np.sum([np.asarray(u["confusion"]).sum(axis=1) for u in first.values()], axis=0).astype(int)


def title(dataset: str, row: dict[str, Any]) -> str:
    folds, seeds = len(row["folds"]), len(row["seeds"])
    return (f"{dataset}: {row['run_name']} ({row['selection']})\n"
            f"UAR {row['uar_text']}  WAR {row['war_text']}  ({folds} fold{'s' * (folds > 1)} x "
            f"{seeds} seed{'s' * (seeds > 1)}), row-normalised")


def _digest(dataset: str, row: dict[str, Any]) -> str:
    content = [STYLE, title(dataset, row), row["classes"], np.asarray(row["confusion"]).tolist(),
               clips_per_class(row).tolist()]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _drawn_from(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.text.get("dferbench")
    except (OSError, ValueError, AttributeError):
        return None


def confusion_png(dataset: str, row: dict[str, Any], path: Path) -> None:
    """Write the row's confusion matrix, summed over its units and row-normalised, to ``path``
    (unless ``path`` already holds the figure of the same content)."""
    digest = _digest(dataset, row)
    if Path(path).is_file() and _drawn_from(path) == digest:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(row["confusion"], dtype=float)
    shares = 100 * cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(row["classes"])
    side = max(8.6, 3.4 + 0.62 * n)  # inches; at DPI 100 never under 860 px
    fig, ax = plt.subplots(figsize=(side, side - 0.6), dpi=DPI)
    image = ax.imshow(shares, vmin=0, vmax=100, cmap="Blues")
    counts = clips_per_class(row)
    ax.set_xticks(range(n), row["classes"], rotation=45, ha="right", fontsize=11)
    ax.set_yticks(range(n), [f"{c} (n={k})" for c, k in zip(row["classes"], counts)], fontsize=11)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{shares[i, j]:.0f}", ha="center", va="center", fontsize=11,
                    color="white" if shares[i, j] > 50 else "black")
    ax.set_xlabel("predicted class", fontsize=12)
    ax.set_ylabel("true class (n = test clips)", fontsize=12)
    ax.set_title(title(dataset, row), fontsize=13)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("% of the true class's clips (each row sums to 100)", fontsize=11)
    fig.subplots_adjust(left=0.24, right=0.9, bottom=0.2, top=0.9)
    drawn = io.BytesIO()
    fig.savefig(drawn, format="png")
    plt.close(fig)
    _save_small(drawn, path, digest)


def _save_small(drawn: io.BytesIO, path: Path, digest: str) -> None:
    """256 colours are plenty for a heat map and its text: a quarter of the bytes in the repository."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("dferbench", digest)
    with Image.open(drawn) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with replacing(path) as tmp:
        small.save(tmp, format="PNG", optimize=True, pnginfo=info)
