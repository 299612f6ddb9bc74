"""The Python API, shared by the CLI and by users' scripts.

    >>> from dferbench import api
    >>> results = api.run("zeroshot-clip", "synthetic", folds=[1], **{"train.batch_size": 8})
    >>> api.leaderboard("runs", "runs/leaderboards")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from dferbench.run import outputs, runner
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
    return [name for name, model in plugins.models().items()
            if not model.presets or runner.preset_name(model, spec) is not None]


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
        folds: list[int] | None = None, seeds: list[int] | None = None, output: str | Path = "runs",
        device: str | None = None, progress: bool | None = None, skip_existing: bool = True,
        echo: Callable[[str], None] = print, train_dataset: str | None = None, train_fold: str | int = "same",
        train_overrides: list[str] | tuple[str, ...] = (), **settings: Any) -> list[dict[str, Any]]:
    """Run ``model`` (a name, ``"all"`` or ``"suite:NAME"``) on ``dataset`` under its protocol;
    return one result per unit.

    ``settings`` are overrides as keywords, ``"section.key"`` or ``section__key``:
    ``run("dferclip", "synthetic", train__epochs=2)``. Everything is validated before
    any unit starts; finished units are skipped on a rerun with the same config. When
    units fail, the others still run, then :class:`~dferbench.errors.UnitsFailed` is
    raised (its ``results`` are the finished units').

    ``train_dataset``: train there instead (its preset; ``train_fold`` ``"same"``, ``"all"``
    or a fold; ``train_overrides`` its ``data.KEY=VALUE`` settings) and test on ``dataset``
    over the classes both share (:mod:`dferbench.run.transfer`).
    """
    common = list(overrides) + _as_overrides(settings)
    outputs.check_output(output)
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
    datasets: dict[str, Any] = {}
    return outputs.run_all([lambda p=p: runner.run_plan(p, output=output, echo=echo, progress=progress,
                                                skip_existing=skip_existing, datasets=datasets) for p in plans])


def robustness(model: str | None, dataset: str, *, checkpoint: str | Path | None = None,
               corruptions: list[str] | None = None, severities: list[int] | None = None, corruption_seed: int = 0,
               config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
               folds: list[int] | None = None, seeds: list[int] | None = None, output: str | Path = "runs",
               device: str | None = None, progress: bool | None = None, skip_existing: bool = True,
               echo: Callable[[str], None] = print, **settings: Any) -> list[dict[str, Any]]:
    """Train ``model`` (a name, ``"all"`` or ``"suite:NAME"``) once per unit of ``dataset`` and
    test it clean and under each (corruption, severity) cell (default: all 13 corruptions x
    severities 1-5); one result per cell and unit, resumed cell by cell (see
    :mod:`dferbench.run.robustness`). With ``checkpoint``, score that trained network instead
    (``model``: None, or the model a file that is not a dferbench checkpoint belongs to; folds
    default to 1, as for :func:`evaluate`).

    >>> api.robustness("zeroshot-clip", "synthetic", folds=[1], corruptions=["gaussian_blur"])
    """
    from dferbench.run import robustness as rob

    outputs.check_output(output)
    cells = rob.grid(corruptions, severities)
    common = list(overrides) + _as_overrides(settings)
    if checkpoint is not None:
        from dferbench.run.trained import checkpoint_plan

        if config or seeds:
            raise DferbenchError("a checkpoint is scored as it is: --config and --seeds do not apply to it")
        plan, fixed = checkpoint_plan(checkpoint, model=model, dataset=dataset, overrides=common, folds=folds,
                                      device=device, echo=echo)
        return rob.run_robustness(plan, cells, corruption_seed=corruption_seed, output=output, progress=progress,
                                  skip_existing=skip_existing, fixed_network=fixed, echo=echo)
    if not model:
        raise DferbenchError("give a model (--model) or a trained network (--checkpoint)")
    plans = [rob.plan(name, dataset, config_file=config, overrides=extra + common, folds=folds, seeds=seeds,
                      device=device) for name, extra in expand(model, dataset)]
    return outputs.run_all([lambda p=p: rob.run_robustness(p, cells, corruption_seed=corruption_seed, output=output,
                                                           progress=progress, skip_existing=skip_existing, echo=echo)
                            for p in plans])


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

    model = plugins.get("model", name)
    network = model.capability("network")
    spec = {"model": cfg.options_of(model.options)}
    if clip_model is not None:
        options["clip_model"] = clip_model
    if "pretrained" in model.options:
        options["pretrained"] = pretrained or ""
    settings = cfg.merge(cfg.defaults(spec), {"model": options}, f"build_model({name!r})", spec)["model"]
    return network(list(class_texts), settings, num_frames, device)


def build_optimizer(name: str, network: Any, **settings: Any):
    """``(optimizer, scheduler)`` for ``network`` as model ``name`` trains it (its plugin's
    ``optimizer``). For DFER-CLIP: SGD (momentum 0.9, weight decay 1e-4) over three groups
    (temporal 1e-2, image encoder 1e-5, context 1e-3) and MultiStepLR [30, 40] x 0.1;
    ``settings`` override any of them."""
    from dferbench.plugin import manager as plugins

    return plugins.get("model", name).capability("optimizer")(network, **settings)


def load_checkpoint(path: str | Path, *, model: str | None = None, dataset: str | None = None,
                    overrides: list[str] | tuple[str, ...] = (), device: str = "cpu"):
    """A trained network from a checkpoint file, and what it scores: a dferbench checkpoint
    (its model rebuilds the network, the core loads and checks the weights) or a file its
    model's plugin reads itself (``load_checkpoint``: for DFER-CLIP, the authors' ``.pth``,
    read without unpickling arbitrary objects; ``model`` None: the one registered model
    that reads such files). ``dataset`` names (and checks) the classes; ``overrides``:
    settings of its preset. Returns ``network`` (eval mode), ``info``
    (:class:`dferbench.CheckpointInfo`), ``path`` and ``message``."""
    from dferbench.run.trained import open_checkpoint

    return open_checkpoint(path, model=model, dataset=dataset, overrides=overrides, device=device)


def evaluate(model: str | None, dataset: str, checkpoint: str | Path, *, folds: list[int] | None = None,
             overrides: list[str] | tuple[str, ...] = (), output: str | Path = "runs", device: str | None = None,
             echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate a trained checkpoint on the test split of ``folds`` (default: fold 1);
    results are recorded like a run's, with the selection policy ``checkpoint``.

    A dferbench checkpoint names its model (``model`` None or the same) and fixes the
    clip settings (frames, image size, normalisation); its classes must be the
    dataset's. Other files (the DFER-CLIP authors' ``.pth``) are read by ``model``'s
    ``load_checkpoint`` (default: the one registered model that reads such files), the
    other data settings come from the model's preset for ``dataset`` and ``overrides``."""
    from dferbench.run.trained import checkpoint_plan

    outputs.check_output(output)
    plan, fixed = checkpoint_plan(checkpoint, model=model, dataset=dataset, overrides=overrides, folds=folds,
                                  device=device, echo=echo)
    return runner.run_plan(plan, output=output, echo=echo, fixed_network=fixed)


def predict(inputs: list[str | Path], checkpoint: str | Path, *, output: str | Path | None = "runs/predict",
            dataset: str | None = None, model: str | None = None, overrides: list[str] | tuple[str, ...] = (),
            face_detector: str = "haar", face: str = "main",
            window: float = 2.0, stride: float = 0.5, video: bool = False, fps: float = 25.0,
            detect_fps: float = 5.0, margin: float = 0.25, device: str | None = None, plot: bool = True,
            echo: Callable[[str], None] = print, progress: bool | None = None) -> list[Any]:
    """Predict the expressions over time in videos, frame folders or folders of them with
    a trained checkpoint (:func:`dferbench.predict.pipeline.predict_videos`); returns one
    :class:`~dferbench.predict.pipeline.VideoResult` per input, failed ones included.

    ``checkpoint``: a dferbench checkpoint (everything comes from its sidecar; with
    ``dataset``, its classes must be that dataset's) or a file a model reads itself, such
    as the DFER-CLIP authors' ``.pth`` with ``dataset`` naming its classes (``overrides``:
    settings of that dataset's preset, e.g. ``model.clip_model=NAME``). ``window``:
    seconds per window (0: the whole face track as one window); ``stride``: seconds
    between window starts; ``fps``: the frame rate of frame folders; ``detect_fps``: frames
    searched for faces per second; ``margin``: the face crop's side is ``1 + margin`` times
    the face box's; ``face``: ``main`` or ``all`` tracks; ``video``: also write an
    annotated MP4; ``output``: None writes nothing. Settings and the checkpoint are checked
    before any video is read (:class:`~dferbench.errors.DferbenchError`)."""
    from dferbench.plugin import manager as plugins
    from dferbench.predict.pipeline import FACE_MODES, predict_videos
    from dferbench.predict.scorer import ModuleScorer
    from dferbench.run.engine import resolve_device
    from dferbench.run.trained import check_settings, open_checkpoint

    for name, value, rule, ok in (("window", window, ">= 0 seconds (0: the whole face track)", window >= 0),
                                  ("stride", stride, "> 0 seconds", stride > 0), ("fps", fps, "> 0", fps > 0),
                                  ("detect_fps", detect_fps, "> 0", detect_fps > 0), ("margin", margin, ">= 0", margin >= 0)):
        if not ok:  # NaN fails every rule
            raise DferbenchError(f"predict: {name} must be {rule}, got {value!r}")
    if face not in FACE_MODES:
        raise DferbenchError(f"predict: face must be one of {', '.join(FACE_MODES)}, got {face!r}")
    if not inputs:
        raise DferbenchError("predict: no inputs; give video files, frame folders or folders of them")
    check_settings(checkpoint, model=model, dataset=dataset, overrides=overrides)
    device = resolve_device(device or "auto")
    detector = plugins.get("face detector", face_detector).build(device=device)
    loaded = open_checkpoint(checkpoint, model=model, dataset=dataset, overrides=overrides, device=device)
    info = loaded.info
    echo(loaded.message)
    scorer = ModuleScorer(loaded.network, info.classes, num_frames=info.num_frames, image_size=info.image_size,
                          normalize=info.normalize, device=device)
    return predict_videos(inputs, scorer, detector, window_s=window or None, stride_s=stride, face=face,
                          output_dir=output, make_video=video, plot=plot, echo=echo, progress=progress,
                          detect_fps=detect_fps, frame_fps=fps, margin=margin,
                          provenance={"checkpoint": str(loaded.path), "model": info.model})


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

    registered = plugins.get("dataset", dataset)
    spec = runner.dataset_spec(registered)
    base = cfg.merge(cfg.defaults(spec), {"data": dict(registered.profile.get("data", {}))},
                     f"profile of dataset {dataset!r}", spec)
    settings = cfg.apply_overrides(base, list(overrides) + ([f"data.root={json.dumps(root)}"] if root else []), spec)
    return check_dataset(registered, settings["data"], decode=decode, num_frames=settings["data"]["num_frames"],
                         progress=progress)


def leaderboard(results: str | Path = "runs", out: str | Path = "runs/leaderboards", datasets: list[str] | None = None,
                *, check: bool = False, images: bool = True, skip_invalid: bool = False,
                echo: Callable[[str], None] | None = None) -> list[str]:
    """Write ``out/<dataset>.md`` from result files; with ``check``, return the stale ones.

    Invalid result files raise one DferbenchError naming each, unless ``skip_invalid``:
    then ``echo`` is told about each one and how many were skipped.
    """
    from dferbench.report import leaderboard as lb

    if not str(results).strip() or not str(out).strip():
        raise DferbenchError("leaderboard: --results and --out must name folders, got ''")
    if not Path(results).is_dir():
        raise DferbenchError(f"results directory {results} does not exist: run `dferbench run` first")
    return lb.build(Path(results), Path(out), datasets, check=check, images=images, skip_invalid=skip_invalid,
                    echo=echo)


def new_plugin(directory: str | Path, name: str | None = None) -> list[Path]:
    """Write a complete, installable plugin package into ``directory`` (new or empty): a
    dataset, a model, a text set, its tests (with :mod:`dferbench.testing`), a README and a
    ``pyproject.toml`` with the ``dferbench`` entry point. Returns the files written."""
    from dferbench.plugin.scaffold import new_plugin as write

    return write(directory, name)
