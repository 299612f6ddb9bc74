"""The Python API, shared by the CLI and by users' scripts.

    >>> from dferbench import api
    >>> results = api.run("zeroshot-clip", "synthetic", folds=[1], **{"train.batch_size": 8})
    >>> api.leaderboard("results", "leaderboards")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from dferbench.run import runner
from dferbench.errors import DferbenchError


def _as_overrides(overrides: dict[str, Any]) -> list[str]:
    out = []
    for key, value in overrides.items():
        dotted = key.replace("__", ".")
        out.append(f"{dotted}={json.dumps(value)}")
    return out


def models_for(dataset: str) -> list[str]:
    """Every registered model that can run on ``dataset`` (it has a preset for it or a default)."""
    from dferbench.plugin import manager as plugins

    return [name for name, spec in plugins.models().items()
            if not spec.presets or dataset in spec.presets or "default" in spec.presets]


SUITES_DIR = Path(__file__).parent / "run" / "suites"


def suites() -> dict[str, str]:
    """Named suites (``dferbench/run/suites/*.toml``) and their descriptions."""
    from dferbench.run.config import read_toml

    return {p.stem: read_toml(p).get("description", "") for p in sorted(SUITES_DIR.glob("*.toml"))}


def expand(model: str, dataset: str) -> list[tuple[str, list[str]]]:
    """``(model, overrides)`` entries for a model name, ``all``, or ``suite:NAME``.

    Suite entries whose model is not installed or cannot run on ``dataset`` are left out
    (a suite names plugins that may not be installed); an unknown suite is an error."""
    from dferbench.run.config import read_toml
    from dferbench.errors import unknown_name

    if model == "all":
        return [(name, []) for name in models_for(dataset)]
    if not model.startswith("suite:"):
        return [(model, [])]
    name = model[len("suite:"):]
    if name not in suites():
        raise unknown_name("suite", name, suites())
    available = set(models_for(dataset))
    return [(entry["model"], list(entry.get("set", [])))
            for entry in read_toml(SUITES_DIR / f"{name}.toml").get("run", []) if entry["model"] in available]


def run(model: str, dataset: str, *, config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
        folds: list[int] | None = None, seeds: list[int] | None = None, output: str | Path = "results",
        device: str | None = None, progress: bool | None = None, skip_existing: bool = True,
        echo: Callable[[str], None] = print, **settings: Any) -> list[dict[str, Any]]:
    """Run ``model`` (a name, ``"all"`` or ``"suite:NAME"``) on ``dataset`` under its protocol;
    return one result per unit.

    ``settings`` are overrides as keywords, ``"section.key"`` or ``section__key``:
    ``run("dferclip", "synthetic", train__epochs=2)``. Everything is validated before
    any unit starts; finished units are skipped on a rerun with the same config.
    """
    common = list(overrides) + _as_overrides(settings)
    plans = [runner.plan(name, dataset, config_file=config, overrides=extra + common, folds=folds, seeds=seeds,
                         device=device) for name, extra in expand(model, dataset)]
    results, datasets = [], {}
    for p in plans:
        results += runner.run_plan(p, output=output, echo=echo, progress=progress, skip_existing=skip_existing,
                                   datasets=datasets)
    return results


def build_model(name: str, *, class_texts: list[str], clip_model: str | None = None,
                pretrained: str | None = None, num_frames: int = 16, device: str = "cpu", **options: Any):
    """The network of model ``name`` as a ``torch.nn.Module``: ``forward(video [B, T, 3, H, W]
    float in [0, 1]) -> logits [B, C]``, as the model's plugin builds it (its ``network``).

    ``pretrained`` (for models with CLIP weights): None (random weights), an open_clip tag
    such as ``"openai"``, or a local file. Other ``options`` are the model's ``[model]``
    settings (``n_ctx``, ``temporal_depth``, ...), its registered defaults otherwise.
    """
    from dferbench.run import config as cfg
    from dferbench.plugin import manager as plugins

    spec = plugins.get("model", name)
    network = spec.capability("network")
    if clip_model is not None:
        options["clip_model"] = clip_model
    if "pretrained" in spec.options:
        options["pretrained"] = pretrained or ""
    settings = cfg.merge({"model": dict(spec.options)}, {"model": options}, f"build_model({name!r})")["model"]
    return network(list(class_texts), settings, num_frames, device)


def build_optimizer(name: str, network: Any, **settings: Any):
    """``(optimizer, scheduler)`` for ``network`` as model ``name`` trains it (its plugin's
    ``optimizer``). For DFER-CLIP: SGD (momentum 0.9, weight decay 1e-4) over three groups
    (temporal 1e-2, image encoder 1e-5, context 1e-3) and MultiStepLR [30, 40] x 0.1;
    ``settings`` override any of them."""
    from dferbench.plugin import manager as plugins

    return plugins.get("model", name).capability("optimizer")(network, **settings)


def load_checkpoint(name: str, path: str | Path, *, device: str = "cpu", **options: Any):
    """A trained network of model ``name`` from a checkpoint file, read by the model's
    plugin (its ``load_checkpoint``: for DFER-CLIP, dferbench's ``.safetensors`` or the
    authors' ``.pth``, read without unpickling arbitrary objects). ``options``: ``[model]``
    settings the checkpoint does not record (e.g. ``clip_model``). Returns a
    :class:`dferbench.LoadedNetwork` (``network``, ``class_texts``, ``message``)."""
    from dferbench.plugin import manager as plugins

    path = Path(path)
    if not path.exists():
        raise DferbenchError(f"checkpoint {path} does not exist")
    return plugins.get("model", name).capability("load_checkpoint")(path, dict(options), device)


def checkpoint_models() -> list[str]:
    """The registered models that can load a trained checkpoint (``dferbench evaluate``)."""
    from dferbench.plugin import manager as plugins

    return sorted(name for name, spec in plugins.models().items() if spec.load_checkpoint is not None)


def evaluate(model: str | None, dataset: str, checkpoint: str | Path, *, folds: list[int] | None = None,
             overrides: list[str] | tuple[str, ...] = (), output: str | Path = "results", device: str | None = None,
             echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate a trained checkpoint of ``model`` on the test split of ``folds`` (default:
    fold 1); results are recorded like a run's, with the selection policy ``checkpoint``.
    ``model`` None: the one registered model that loads checkpoints. ``[model]`` settings
    given with ``overrides`` reach the model's checkpoint loader (e.g.
    ``model.clip_model=NAME`` for a non-standard architecture); data settings come from
    the model's preset for the dataset."""
    if model is None:
        able = checkpoint_models()
        if len(able) != 1:
            raise DferbenchError("name the model the checkpoint belongs to with --model; models that load "
                                 f"checkpoints: {', '.join(able) or '(none)'}")
        model = able[0]
    checkpoint = Path(checkpoint)
    plan = runner.plan(model, dataset, overrides=list(overrides), folds=folds or [1], device=device)
    given = {k: v for k, v in plan.config["model"].items() if plan.preset["model"].get(k) != v}
    loaded = load_checkpoint(model, checkpoint, **given)
    echo(loaded.message or f"loaded {checkpoint}")
    plan.run_name = f"{model}[checkpoint={checkpoint.name}]"
    return runner.run_plan(plan, output=output, echo=echo, fixed_network=(loaded.network, loaded.class_texts))


def check_data(dataset: str, *, root: str | None = None, overrides: list[str] | tuple[str, ...] = (),
               decode: bool = True, progress: Callable[[int, int], None] | None = None):
    """Validate any registered dataset without training; returns a
    :class:`dferbench.CheckReport` with ``.ok`` and ``.format()``. The dataset's own check
    (annotation files with file and line, for the built-in real datasets) runs first, then
    the generic checks: every frame the sampler can draw decodes, labels in range, no
    duplicates, no train/test overlap, no empty test split, frame counts."""
    from dferbench.data.checks import check_dataset
    from dferbench.plugin import manager as plugins
    from dferbench.run import config as cfg

    spec = plugins.get("dataset", dataset)
    base = cfg.merge(runner.dataset_defaults(spec), {"data": dict(spec.profile.get("data", {}))},
                     f"profile of dataset {dataset!r}")
    settings = cfg.apply_overrides(base, list(overrides) + ([f"data.root={json.dumps(root)}"] if root else []))
    return check_dataset(spec, settings["data"], decode=decode, num_frames=settings["data"]["num_frames"],
                         progress=progress)


def leaderboard(results: str | Path = "results", out: str | Path = "leaderboards", datasets: list[str] | None = None,
                *, check: bool = False, images: bool = True) -> list[str]:
    """Write ``out/<dataset>.md`` from result files; with ``check``, return the stale ones."""
    from dferbench.report import leaderboard as lb

    if not Path(results).is_dir():
        raise DferbenchError(f"results directory {results} does not exist: run `dferbench run` first")
    return lb.build(Path(results), Path(out), datasets, check=check, images=images)


def new_plugin(directory: str | Path, name: str | None = None) -> list[Path]:
    """Write a complete, installable plugin package into ``directory`` (new or empty): a
    dataset, a model, a text set, its tests (with :mod:`dferbench.testing`), a README and a
    ``pyproject.toml`` with the ``dferbench`` entry point. Returns the files written."""
    from dferbench.plugin.scaffold import new_plugin as write

    return write(directory, name)
