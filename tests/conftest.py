"""Test-session setup: no third-party plugins, no progress bars, throwaway plugins."""

from __future__ import annotations

import os

os.environ["DFERBENCH_DISABLE_PLUGINS"] = "third-party"
os.environ["DFERBENCH_NO_PROGRESS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test never downloads

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dferbench import Option, hookimpl  # noqa: E402
from dferbench.data.records import ClipRecord, DFERDataset  # noqa: E402
from dferbench.plugin.manager import pm  # noqa: E402

TOY_CLASSES = ["low", "mid", "high"]


class ToyReader:
    """Frames whose brightness encodes the label, plus noise: learnable in a few steps."""

    def __call__(self, record: ClipRecord, indices) -> np.ndarray:
        rng = np.random.default_rng(int(record.clip_id.split("-")[1]))
        base = 40 + 80 * record.label
        frames = base + rng.normal(0, 25, size=(len(indices), 8, 8, 3))
        return np.clip(frames, 0, 255).astype(np.uint8)


def make_toy_dataset(options: dict[str, Any]) -> DFERDataset:
    n = options["clips_per_fold"]
    splits = {}
    records = [ClipRecord(f"clip-{i}", f"toy:{i}", 5 + i % 20, i % 3, subject=f"s{(i // 3) % 6}") for i in range(3 * n)]
    for fold in (1, 2, 3):
        test = [r for r in records if int(r.subject[1:]) % 3 == fold - 1]
        train = [r for r in records if r not in test]
        splits[fold] = {"train": train, "test": test}
    return DFERDataset("toy", list(TOY_CLASSES), splits, ToyReader())


class MeanBrightness(nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        self.head = nn.Linear(1, n_classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # [B, T, 3, H, W]
        return self.head(video.mean(dim=(1, 2, 3, 4)).unsqueeze(1) * 4 - 2)


class ToyMethod:
    """A trainable torch method that goes through the shared engine."""

    calls: list[str] = []

    def __init__(self, ctx):
        self.ctx = ctx
        torch.manual_seed(ctx.seed)
        self.module = MeanBrightness(len(ctx.classes))

    def fit(self, train, monitor):
        from dferbench.run.engine import train_module

        ToyMethod.calls.append("fit")
        if self.ctx.fold == self.ctx.options["fail_on_fold"]:
            raise KeyboardInterrupt("simulated Ctrl-C")
        if self.ctx.fold == self.ctx.options["error_on_fold"]:
            raise ValueError("simulated bug in a model plugin\nsecond line")
        opt = torch.optim.SGD(self.module.parameters(), lr=self.ctx.options["lr"], momentum=0.9)
        return train_module(self.module, opt, None, train, monitor, epochs=self.ctx.train["epochs"],
                            batch_size=self.ctx.train["batch_size"], device=self.ctx.device, seed=self.ctx.seed)

    def predict(self, clips):
        from dferbench.run.engine import predict_module

        return predict_module(self.module, clips, batch_size=16, device=self.ctx.device)


class ToyPlugin:
    @hookimpl
    def dferbench_register_datasets(self, register):
        register("toy", make_toy_dataset, description="3 brightness classes, 3 folds", options={"clips_per_fold": 8})

    @hookimpl
    def dferbench_register_models(self, register):
        register("toy-model", ToyMethod, description="linear head on mean brightness",
                 options={"lr": 0.5, "fail_on_fold": 0, "error_on_fold": Option(0, execution=True)},
                 family="classifier-based",
                 presets={"default": {"train": {"epochs": 3, "batch_size": 8}, "data": {"image_size": 8}}})


@pytest.fixture
def toy_plugin():
    pm.register(ToyPlugin(), name="undo-toy")
    try:
        yield
    finally:
        pm.unregister(name="undo-toy")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a CUDA GPU: deselected (and said so) where torch sees none."""
    if torch.cuda.is_available():
        return
    cuda = [item for item in items if item.get_closest_marker("cuda")]
    if cuda:
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]
        config.hook.pytest_deselected(items=cuda)


def pytest_report_header(config):
    return "cuda tests: " + ("run on " + torch.cuda.get_device_name(0) if torch.cuda.is_available()
                             else "deselected (torch sees no CUDA GPU; scripts/gpu_check.sh runs them)")
