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

    spec = plugins.get("dataset", dataset)
    return [name for name, reg in plugins.models().items()
            if not reg.extra.get("presets") or runner.preset_name(reg, spec) is not None]


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
        echo: Callable[[str], None] = print, train_dataset: str | None = None, train_fold: str | int = "same",
        train_overrides: list[str] | tuple[str, ...] = (), **settings: Any) -> list[dict[str, Any]]:
    """Run ``model`` (a name, ``"all"`` or ``"suite:NAME"``) on ``dataset`` under its protocol;
    return one result per unit.

    ``settings`` are overrides as keywords, ``"section.key"`` or ``section__key``:
    ``run("dferclip", "synthetic", train__epochs=2)``. Everything is validated before
    any unit starts; finished units are skipped on a rerun with the same config.

    ``train_dataset``: train there instead (its preset; ``train_fold`` ``"same"``, ``"all"``
    or a fold; ``train_overrides`` its ``data.KEY=VALUE`` settings) and test on ``dataset``
    over the classes both share (:mod:`dferbench.run.transfer`).
    """
    common = list(overrides) + _as_overrides(settings)
    if not train_dataset and (train_overrides or str(train_fold) != "same"):
        raise DferbenchError("--train-fold and --train-set go with --train-dataset (a cross-dataset transfer run)")
    if train_dataset:
        from dferbench.run import transfer

        plans = [transfer.plan(name, dataset, train_dataset, train_fold=train_fold, train_overrides=train_overrides,
                               config_file=config, overrides=extra + common, folds=folds, seeds=seeds, device=device)
                 for name, extra in expand(model, train_dataset)]
    else:
        plans = [runner.plan(name, dataset, config_file=config, overrides=extra + common, folds=folds, seeds=seeds,
                             device=device) for name, extra in expand(model, dataset)]
    results, datasets = [], {}
    for p in plans:
        results += runner.run_plan(p, output=output, echo=echo, progress=progress, skip_existing=skip_existing,
                                   datasets=datasets)
    return results


def robustness(model: str, dataset: str, *, corruptions: list[str] | None = None, severities: list[int] | None = None,
               corruption_seed: int = 0, config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
               folds: list[int] | None = None, seeds: list[int] | None = None, output: str | Path = "runs",
               device: str | None = None, progress: bool | None = None, skip_existing: bool = True,
               echo: Callable[[str], None] = print, **settings: Any) -> list[dict[str, Any]]:
    """Train ``model`` (a name, ``"all"`` or ``"suite:NAME"``) once per unit of ``dataset`` and
    test it clean and under each (corruption, severity) cell (default: all 13 corruptions x
    severities 1-5); one result per cell and unit, resumed cell by cell (see
    :mod:`dferbench.run.robustness`).

    >>> api.robustness("zeroshot-clip", "synthetic", folds=[1], corruptions=["gaussian_blur"])
    """
    from dferbench.run import robustness as rob

    cells = rob.grid(corruptions, severities)
    common = list(overrides) + _as_overrides(settings)
    plans = [rob.plan(name, dataset, config_file=config, overrides=extra + common, folds=folds, seeds=seeds,
                      device=device) for name, extra in expand(model, dataset)]
    return [result for p in plans for result in rob.run_robustness(
        p, cells, corruption_seed=corruption_seed, output=output, progress=progress, skip_existing=skip_existing,
        echo=echo)]


def build_model(name: str, *, class_texts: list[str], clip_model: str | None = None,
                pretrained: str | None = None, num_frames: int = 16, device: str = "cpu", **options: Any):
    """The network of model ``name`` as a ``torch.nn.Module``: ``forward(video [B, T, 3, H, W]
    float in [0, 1]) -> logits [B, C]``.

    ``pretrained``: None (random weights), an open_clip tag such as ``"openai"``, or a local
    file. Other ``options`` are the model's ``[model]`` settings (``n_ctx``,
    ``temporal_depth``, ...), the paper's values by default.
    """
    from dferbench.run import config as cfg
    from dferbench.plugin import manager as plugins

    reg = plugins.get("model", name)
    network = reg.extra.get("network")
    if network is None:
        raise DferbenchError(f"model {name!r} does not offer a standalone network (its plugin registers no `network`)")
    settings = dict(reg.options)
    if clip_model is not None:
        options["clip_model"] = clip_model
    options["pretrained"] = pretrained or ""
    settings = cfg.merge({"model": settings}, {"model": options}, f"build_model({name!r})")["model"]
    return network(list(class_texts), settings, num_frames, device)


def build_optimizer(model: Any, **options: Any):
    """The optimiser and per-epoch scheduler DFER-CLIP trains with: SGD (momentum 0.9, weight
    decay 1e-4) over three groups (temporal 1e-2, image encoder 1e-5, context 1e-3) and
    MultiStepLR [30, 40] x 0.1. ``options`` override any of those (see
    :func:`dferbench_plugins.dferclip.network.build_optimizer`)."""
    from dferbench_plugins.dferclip.network import build_optimizer as build

    return build(model, **options)


def load_checkpoint(model: Any, path: str | Path) -> dict[str, Any]:
    """Load weights into ``model`` from dferbench's own checkpoint (``.safetensors``) or a
    checkpoint written by the DFER-CLIP authors' script (``.pth``, read without unpickling
    arbitrary objects). Returns what was done: format, dropped and skipped entries."""
    from dferbench_plugins.dferclip import checkpoints

    path = Path(path)
    if not path.exists():
        raise DferbenchError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        import safetensors.torch

        state, report = safetensors.torch.load_file(str(path)), {"format": "dferbench"}
    else:
        obj, skipped = checkpoints.read_torch_checkpoint(path, map_location="cpu")
        raw = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
        state, dropped = checkpoints.convert_authors_state_dict(raw)
        report = {"format": "dfer-clip authors", "dropped_keys": len(dropped), "skipped_objects": skipped,
                  "epoch": obj.get("epoch") if isinstance(obj, dict) else None}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DferbenchError(f"checkpoint {path} does not fit this model: {exc}") from None
    return report


def evaluate(model: str, dataset: str, checkpoint: str | Path, *, folds: list[int] | None = None,
             overrides: list[str] | tuple[str, ...] = (), output: str | Path = "results", device: str | None = None,
             echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate a trained checkpoint (dferbench's or the DFER-CLIP authors') on the test
    split of ``folds`` (default: fold 1); results are recorded like a run's, with the
    selection policy ``checkpoint``. ``--set model.clip_model=NAME`` names the CLIP
    architecture of a non-standard checkpoint; data settings come from the model's preset."""
    from dferbench_plugins.dferclip.checkpoints import load_authors_checkpoint

    if model != "dferclip":
        raise DferbenchError(f"evaluate supports dferclip checkpoints; got model {model!r}")
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise DferbenchError(f"checkpoint {checkpoint} does not exist")
    plan = runner.plan(model, dataset, overrides=list(overrides), folds=folds or [1], device=device,
                       weights=False)  # the checkpoint holds the CLIP weights
    if checkpoint.suffix == ".safetensors":
        from dferbench_plugins.dferclip.checkpoints import load_checkpoint as load_own

        network, _ = load_own(checkpoint)
        texts: list[str] = network.class_texts
        echo(f"loaded dferbench checkpoint {checkpoint}")
    else:
        # The architecture is inferred from tensor shapes unless the user names it: shapes
        # cannot tell the attention head count of a non-OpenAI CLIP.
        named = plan.config["model"]["clip_model"] != plan.preset["model"]["clip_model"]
        loaded = load_authors_checkpoint(checkpoint, clip_model_name=plan.config["model"]["clip_model"] if named else None)
        network, texts = loaded.model, loaded.class_texts
        echo(f"loaded the DFER-CLIP authors' checkpoint {checkpoint}: architecture {loaded.clip_model_name or 'custom'}, "
             f"epoch {loaded.epoch}, {len(loaded.dropped_keys)} duplicated clip_model_ keys dropped, "
             f"pickled objects not loaded: {', '.join(loaded.skipped_objects) or 'none'}; "
             f"class texts {'read from the checkpoint' if loaded.texts_recovered else 'given'}")
    plan.run_name = f"{model}[checkpoint={checkpoint.name}]"
    return runner.run_plan(plan, output=output, echo=echo, fixed_network=(network, texts))


def check_data(dataset: str, *, root: str | None = None, overrides: list[str] | tuple[str, ...] = (),
               decode: bool = True):
    """Validate a dataset on disk without training; returns a report with ``.ok`` and
    ``.format()`` (missing clips, frame-count mismatches, unreadable files, bad labels,
    duplicates, train/test overlap, malformed annotation lines with file and line)."""
    import copy

    from dferbench.run import config as cfg
    from dferbench.plugin import manager as plugins
    from dferbench_plugins.datasets.checks import check_dataset

    reg = plugins.get("dataset", dataset)
    base = copy.deepcopy(cfg.CORE_DEFAULTS)
    base["data"].update(reg.options)
    settings = cfg.apply_overrides(base, list(overrides) + ([f"data.root={json.dumps(root)}"] if root else []))
    return check_dataset(dataset, settings["data"], decode=decode)


def leaderboard(results: str | Path = "results", out: str | Path = "leaderboards", datasets: list[str] | None = None,
                *, check: bool = False, images: bool = True, skip_invalid: bool = False,
                echo: Callable[[str], None] | None = None) -> list[str]:
    """Write ``out/<dataset>.md`` from result files; with ``check``, return the stale ones.

    Invalid result files raise one DferbenchError naming each, unless ``skip_invalid``:
    then ``echo`` is told about each one and how many were skipped.
    """
    from dferbench.report import leaderboard as lb

    if not Path(results).is_dir():
        raise DferbenchError(f"results directory {results} does not exist: run `dferbench run` first")
    return lb.build(Path(results), Path(out), datasets, check=check, images=images, skip_invalid=skip_invalid,
                    echo=echo)
