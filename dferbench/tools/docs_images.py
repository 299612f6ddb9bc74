"""Figures of the docs: the test-time corruptions and the synthetic domains.

``python -m dferbench.tools.docs_images [DIR]`` writes ``corruptions.png`` and
``synthetic-domains.png`` to ``DIR`` (default ``docs/images``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dferbench.data.corruptions import CORRUPTIONS, CorruptedReader, corrupt_indices
from dferbench.data.records import ClipRecord, DFERDataset
from dferbench.data.sampling import segment_indices

SHEET_SEVERITIES = (1, 3, 5)


def _dataset(name: str, size: int) -> DFERDataset:
    """A registered dataset (the synthetic plugin's) rendered at ``size`` px."""
    from dferbench.testing import build_dataset

    return build_dataset(name, render_size=size)


def _pick_clip(ds: DFERDataset, emotion: str = "happiness") -> ClipRecord:
    """The first fold-1 test clip of ``emotion`` with at least 32 frames."""
    label = ds.classes.index(emotion)
    return next(r for r in ds.split(1, "test") if r.label == label and r.n_frames >= 32)


def _middle(record: ClipRecord) -> list[int]:
    return [record.n_frames // 2]


def corruption_sheet(path: Path, *, size: int = 64, seed: int = 0) -> Path:
    """One synthetic face under every corruption at severities 1, 3 and 5.

    Spatial corruptions show the clip's middle frame; temporal ones plot the 16 test-time
    frame indices against their position (grey: clean, black: corrupted).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = _dataset("synthetic", size)
    rec = _pick_clip(ds)
    middle = _middle(rec)
    test_idx = segment_indices(rec.n_frames, 16, train=False)
    names = list(CORRUPTIONS)
    cols = 1 + len(SHEET_SEVERITIES)
    fig, axes = plt.subplots(len(names), cols, figsize=(1.5 * cols + 1.4, 1.5 * len(names)))
    for row, name in enumerate(names):
        temporal = CORRUPTIONS[name].acts_on == "indices"
        for col, severity in enumerate((0, *SHEET_SEVERITIES)):
            ax = axes[row, col]
            reader = CorruptedReader(ds.reader, name, severity, seed)
            if temporal:
                got = corrupt_indices(test_idx, rec.n_frames, name, severity, seed=seed, clip_id=rec.clip_id)
                ax.plot(test_idx, color="0.7", lw=2)
                ax.plot(got, "k.-", lw=1, ms=3)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_ylim(-1, rec.n_frames)
                ax.set_box_aspect(1)
            else:
                ax.imshow(reader(rec, middle)[0], interpolation="nearest")
                ax.axis("off")
            if row == 0:
                ax.set_title("clean" if severity == 0 else f"severity {severity}", fontsize=9)
        axes[row, 0].annotate(name, (-0.1, 0.5), xycoords="axes fraction", ha="right", va="center", fontsize=9)
    fig.suptitle(f"Test-time corruptions ({size} px synthetic face, clip {rec.clip_id}); "
                 "temporal rows: frame index vs position", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def domain_sheet(path: Path, *, clips: int = 8, size: int = 64) -> Path:
    """Middle frames of the first fold-1 test clips of ``synthetic`` (top row) and
    ``synthetic-wild`` (bottom row), with their class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = ("synthetic", "synthetic-wild")
    fig, axes = plt.subplots(len(domains), clips, figsize=(1.3 * clips, 1.55 * len(domains)))
    for row, domain in enumerate(domains):
        ds = _dataset(domain, size)
        for col, rec in enumerate(ds.split(1, "test")[:clips]):
            ax = axes[row, col]
            ax.imshow(ds.reader(rec, _middle(rec))[0], interpolation="nearest")
            ax.set_title(ds.classes[rec.label], fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(domain, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs/images")
    print(corruption_sheet(out / "corruptions.png"))
    print(domain_sheet(out / "synthetic-domains.png"))


if __name__ == "__main__":
    main()
