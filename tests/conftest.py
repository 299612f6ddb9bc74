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


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
BROWSER_HELP = ("install it with `apt-get install -y --no-install-recommends chromium chromium-driver` "
                "and `pip install -e '.[test]'` (selenium)")


def browser_missing() -> str:
    """Why the ``browser`` tests cannot run here, or "" when they can."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    return "no " + " and no ".join(missing) if missing else ""


BROWSER_DESELECTED = pytest.StashKey[int]()


def _deselect(config, items, marker: str) -> int:
    chosen = [item for item in items if item.get_closest_marker(marker)]
    if chosen:
        items[:] = [item for item in items if not item.get_closest_marker(marker)]
        config.hook.pytest_deselected(items=chosen)
    return len(chosen)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a CUDA GPU: deselected (and said so) where torch sees none.
    Tests marked ``browser`` need chromium: deselected (and said so) where it is missing,
    unless CI is set, where they run and fail."""
    if not torch.cuda.is_available():
        _deselect(config, items, "cuda")
    if browser_missing() and not os.environ.get("CI"):
        config.stash[BROWSER_DESELECTED] = _deselect(config, items, "browser")


def pytest_report_header(config):
    why = browser_missing()
    return [
        "cuda tests: " + ("run on " + torch.cuda.get_device_name(0) if torch.cuda.is_available()
                          else "deselected (torch sees no CUDA GPU; scripts/gpu_check.sh runs them)"),
        "browser tests: " + ("run with " + CHROMIUM if not why else
                             f"FAIL under CI ({why}): {BROWSER_HELP}" if os.environ.get("CI") else
                             f"deselected ({why}): {BROWSER_HELP}"),
    ]


def pytest_terminal_summary(terminalreporter, config):
    """Say why browser tests were deselected at the end too, where -q hides the header."""
    if config.stash.get(BROWSER_DESELECTED, 0):
        terminalreporter.write_line(f"{config.stash[BROWSER_DESELECTED]} browser tests deselected "
                                    f"({browser_missing()}): {BROWSER_HELP}", yellow=True)


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of the browser and its driver; fails, saying how to install them, where they are missing."""
    why = browser_missing()
    if why:
        pytest.fail(f"the browser tests need chromium ({why}): {BROWSER_HELP}", pytrace=False)
    return CHROMIUM, CHROMEDRIVER
