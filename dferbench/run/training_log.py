"""What a training reports after each epoch: a line, a JSON-lines history file, TensorBoard.

A history row holds ``epoch`` (1-based), ``train_loss`` (mean over the epoch's clips),
``lr`` (the learning rate of each optimiser parameter group during the epoch, in the
optimiser's order), ``seconds`` (training and scoring of the epoch, state saving not
included) and, when test clips are scored per epoch (``best_on_test``), ``test_uar`` and
``test_war`` in percent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from dferbench.errors import DferbenchError
from dferbench.files import naming, replacing


def require_tensorboard() -> None:
    """Stop, in one line, when TensorBoard logging is asked for but cannot be written."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise DferbenchError("train.tensorboard is on, but the tensorboard package is not installed: "
                             "pip install 'dferbench[tensorboard]', or drop --set train.tensorboard=true")


def format_epoch(row: dict[str, Any], epochs: int) -> str:
    """``epoch 3/50  loss 1.234  lr 1e-05  test UAR 41.2 WAR 50.1  12.3 s``."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.4g}"]
    if row.get("lr"):
        parts.append("lr " + "/".join(f"{lr:.3g}" for lr in row["lr"]))
    if "test_war" in row:
        parts.append(f"test UAR {row['test_uar']:.1f} WAR {row['test_war']:.1f}")
    parts.append(f"{row['seconds']:.1f} s")
    return "  ".join(parts)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class TrainingLog:
    """Writes each finished epoch's row where the unit's files live.

    ``history_path``: the rows as JSON lines, one written (and flushed) per epoch, so a
    kill leaves whole lines; :meth:`start` rewrites it from the rows a resumed training
    already has. ``echo``: one line per epoch (:func:`format_epoch`). ``tensorboard_dir``:
    scalars for TensorBoard (``train/loss``, ``train/lr/<group>``, ``test/uar``,
    ``test/war``, ``time/epoch_seconds``), with ``epoch`` as the step.
    """

    def __init__(self, *, epochs: int, history_path: Path | None = None,
                 echo: Callable[[str], None] | None = None, tensorboard_dir: Path | None = None,
                 group_names: list[str] | None = None):
        self.epochs, self.history_path, self.echo = epochs, history_path, echo
        self.tensorboard_dir, self.group_names = tensorboard_dir, group_names or []
        self._writer: Any = None

    def start(self, rows: list[dict[str, Any]]) -> None:
        """Begin after ``rows`` (the epochs a resumed training has finished; [] when new)."""
        if self.history_path is not None:
            with replacing(self.history_path) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        if self.tensorboard_dir is not None:
            require_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops the events a killed run wrote after its last saved epoch
            self._writer = SummaryWriter(str(self.tensorboard_dir), purge_step=len(rows) + 1)

    def epoch(self, row: dict[str, Any]) -> None:
        if self.history_path is not None:
            with naming(self.history_path), open(self.history_path, "a") as f:
                f.write(json.dumps(row) + "\n")  # one write per row: a kill leaves whole lines
                f.flush()
                os.fsync(f.fileno())
        if self.echo is not None:
            self.echo(format_epoch(row, self.epochs))
        if self._writer is not None:
            step = row["epoch"]
            self._writer.add_scalar("train/loss", row["train_loss"], step)
            for i, lr in enumerate(row.get("lr", [])):
                name = self.group_names[i] if i < len(self.group_names) else str(i)
                self._writer.add_scalar(f"train/lr/{name}", lr, step)
            for key in ("test_uar", "test_war"):
                if key in row:
                    self._writer.add_scalar(key.replace("_", "/"), row[key], step)
            self._writer.add_scalar("time/epoch_seconds", row["seconds"], step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
