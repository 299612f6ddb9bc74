"""The DFER-CLIP paper's comparison methods (Zhao & Patras, BMVC 2023, Tables 4-5), each
as faithful to its own paper as a video version allows; see shared/reference/baselines.md.

- ``zeroshot-clip`` / ``zeroshot-farl``: frame-averaged image features against a text
  classifier, no training (CLIP, and FaRL's face-domain weights from a local file).

- ``linear-probe``: L-BFGS logistic regression on frozen, frame-averaged CLIP features,
  C searched on a validation split of the training fold (CLIP paper / CoOp's lpclip).
- ``finetune`` / ``finetune-tm``: CLIP image encoder + linear head trained end to end, on
  the mean of the frame features / after DFER-CLIP's temporal transformer.
- ``coop`` / ``cocoop``: learnable prompt context (Co-CoOp: plus the meta-net shift) with
  frozen CLIP encoders, on frame-averaged features.

Presets: ``presets/<model>/<dataset>.toml``, each commented with where its values come
from. Frozen-encoder methods read image features from the on-disk feature cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from dferbench import Option, check_text_set, hookimpl

PRESETS_DIR = Path(__file__).parent / "presets"

CLIP = {
    "clip_model": "ViT-B-32-quickgelu",  # the paper compares everything on CLIP ViT-B/32, OpenAI weights
    "pretrained": Option("openai", "open_clip tag, a local file, or '' for random weights", path=True),
}
FEATURE_CACHE = Option(True, "keep frozen image features on disk for the next run", execution=True)

LINEAR_PROBE_OPTIONS: dict[str, Any] = {
    **CLIP,
    "val_fraction": Option(0.2, "of the training fold, held out to choose C", gt=0, lt=1),
    "search_steps": Option(8, "lpclip's halving steps after the coarse sweep", ge=0),
    "max_iter": Option(1000, "L-BFGS iterations (CLIP paper / lpclip)", ge=1),
    "l2_normalize": False,  # lpclip feeds raw image features
    "feature_precision": Option("fp32", "the frozen encoder's arithmetic; fp64 gives the same features on every "
                                "CPU, whose last-bit differences the C search otherwise amplifies",
                                choices=("fp32", "fp64")),
    "refit_on_full_train": True,  # CLIP_benchmark: refit on train + validation with the chosen C
    "feature_cache": FEATURE_CACHE,
}

FINETUNE_OPTIONS: dict[str, Any] = {
    **CLIP,
    "lr_image": Option(1e-5, "DFER-CLIP's image-encoder rate", ge=0),
    "lr_head": Option(1e-2, "new layer: DFER-CLIP's rate for its new temporal layers", ge=0),
    "momentum": Option(0.9, ge=0),
    "weight_decay": Option(1e-4, ge=0),
    "milestones": Option([30, 40], "epochs after which the learning rates are multiplied by gamma",
                         item=Option(1, ge=1)),
    "gamma": Option(0.1, gt=0),
}

FINETUNE_TM_OPTIONS: dict[str, Any] = {
    **FINETUNE_OPTIONS,
    "temporal_depth": Option(1, "DFER-CLIP's temporal transformer layers", ge=0),
    "lr_temporal": Option(1e-2, "DFER-CLIP's temporal-model rate", ge=0),
}

_PROMPT_OPTIMISER = {
    # CoOp/Co-CoOp configs (Dassl): SGD 0.002, momentum 0.9, weight decay 5e-4
    "lr": Option(0.002, ge=0),
    "momentum": Option(0.9, ge=0),
    "weight_decay": Option(5e-4, ge=0),
    "warmup_epochs": Option(1, "constant warm-up epochs at warmup_lr, then cosine", ge=0),
    "warmup_lr": Option(1e-5, ge=0),
    "train_on_cached_features": False,  # CoOp trains on augmented clips; true: cached, un-augmented features
    "feature_cache": FEATURE_CACHE,
}

TEXT = Option("class-names", "a registered text set or file:PATH (CoOp's prompt: \"X X ... X <class name>.\")",
              check=check_text_set, path=True)

COOP_OPTIONS: dict[str, Any] = {
    **CLIP,
    "text": TEXT,
    "n_ctx": Option(16, "context tokens (CoOp's default); ignored with ctx_init (its word count)", ge=1),
    "class_specific": False,  # CoOp's default generic context; true = CSC
    "class_token_position": Option("end", "where the class name sits among the context tokens",
                                   choices=("end", "middle", "front")),
    "ctx_init": "",  # "" = random N(0, 0.02); e.g. "a photo of a"
    **_PROMPT_OPTIMISER,
}

COCOOP_OPTIONS: dict[str, Any] = {
    **CLIP,
    "text": TEXT,
    "n_ctx": Option(4, "Co-CoOp's configs: 4 context tokens initialised from \"a photo of a\"", ge=1),
    "ctx_init": "a photo of a",
    **_PROMPT_OPTIMISER,
}


def input_size(options: Mapping[str, Any]) -> int:
    """The image side a CLIP-based baseline reads: its CLIP's input resolution."""
    from dferbench import clip_image_size

    return clip_image_size(options["clip_model"])


def _presets(model: str) -> dict[str, str]:
    return {p.stem: str(p) for p in sorted((PRESETS_DIR / model).glob("*.toml"))}


def _factory(name: str):
    """Import a method's module only when a run builds it (the registry stays light)."""

    def build(ctx):
        if name == "linear-probe":
            from dferbench_plugins.baselines.linear_probe import LinearProbe as cls
        elif name in ("finetune", "finetune-tm"):
            from dferbench_plugins.baselines.finetune import FineTune as cls
        elif name == "coop":
            from dferbench_plugins.baselines.prompting import CoOpMethod as cls
        else:
            from dferbench_plugins.baselines.prompting import CoCoOpMethod as cls
        return cls(ctx)

    return build


@hookimpl
def dferbench_register_models(register):
    from dferbench_plugins.baselines import zeroshot
    from dferbench_plugins.baselines.farl import farl_source

    clip = {"input_size": input_size}
    register("zeroshot-clip", zeroshot.ZeroShotCLIP, options=zeroshot.OPTIONS, presets=zeroshot.PRESETS,
             family="text-based", **clip,
             description="Zero-shot CLIP: mean frame feature vs. a text classifier (100 x cosine)")
    register("zeroshot-farl", zeroshot.ZeroShotFaRL, options=zeroshot.FARL_OPTIONS, presets=zeroshot.FARL_PRESETS,
             family="text-based", weights_help=farl_source(), **clip,
             description="Zero-shot FaRL ViT-B/16 (face-domain CLIP, local weights file) vs. a text classifier")
    register("linear-probe", _factory("linear-probe"), options=LINEAR_PROBE_OPTIONS, presets=_presets("linear-probe"),
             family="classifier-based", **clip,
             description="Linear probe: L-BFGS logistic regression on frozen mean CLIP features, C searched on train")
    register("finetune", _factory("finetune"), options=FINETUNE_OPTIONS, presets=_presets("finetune"),
             family="classifier-based", **clip,
             description="Full fine-tuning: CLIP image encoder + linear head on the mean frame feature")
    register("finetune-tm", _factory("finetune-tm"), options=FINETUNE_TM_OPTIONS, presets=_presets("finetune-tm"),
             family="classifier-based", temporal=lambda options: options["temporal_depth"] != 0, **clip,
             description="Full fine-tuning with DFER-CLIP's temporal transformer before the linear head")
    register("coop", _factory("coop"), options=COOP_OPTIONS, presets=_presets("coop"), family="text-based", **clip,
             description="CoOp: learnable prompt context, frozen CLIP, mean frame feature")
    register("cocoop", _factory("cocoop"), options=COCOOP_OPTIONS, presets=_presets("cocoop"), family="text-based",
             **clip, description="Co-CoOp: CoOp + per-clip meta-net context shift (batched)")


@hookimpl
def dferbench_register_commands(register):
    from dferbench_plugins.baselines.bench import coop_memory_command

    register(coop_memory_command, group="bench")
