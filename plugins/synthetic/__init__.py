"""The embedded benchmark: procedurally rendered face clips, no files needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from dferbench import DFEW_CLASSES, MAFW_CLASSES, Option, hookimpl

# The class names are the canonical emotion names (dferbench.EMOTIONS), so each dataset's
# emotions are its class names: synthetic and synthetic-wild in DFEW's order, synthetic-11 in MAFW's.

CLIP_DIR = Path(__file__).parent / "clip"
TINY_CLIP = "dferbench-tiny"
"""The embedded benchmark's CLIP architecture: ViT 4 x 128 at 64 px (``clip/dferbench-tiny.json``)."""
SYNTHETIC_PRETRAINED = "dferbench-synthetic"
"""Weights tag of the shipped ``dferbench-tiny`` checkpoint pre-trained on synthetic faces."""
SYNTHETIC_WEIGHTS = CLIP_DIR / "dferbench-tiny-synthetic.safetensors"

PROFILE = {
    # CPU-sized: 8 frames per clip; the shipped tiny CLIP pre-trained on rendered faces
    # (CLIP-normalised pixels, 64 px: the image size follows the CLIP).
    "data": {"num_frames": 8, "normalize": "clip"},
    "model": {"clip_model": TINY_CLIP, "pretrained": SYNTHETIC_PRETRAINED},
}
"""Settings that suit the synthetic benchmark for the built-in CLIP models."""


NUM_FOLDS = 5


def _options(num_classes: int) -> dict[str, Option]:
    return {
        "num_clips": Option(400, f"clips rendered; at least one per class in each of the {NUM_FOLDS} test folds",
                            ge=NUM_FOLDS * num_classes),
        "generator_seed": Option(0, "seed of the rendered clips", ge=0, lt=2**32),
        "render_size": Option(64, "side of the rendered frames, pixels", ge=8),
    }


def _factory(num_classes: int, domain: str = "synthetic"):
    def build(options: Mapping[str, Any]):
        from dferbench_plugins.synthetic.render import make_synthetic_dataset

        return make_synthetic_dataset(num_classes=num_classes, num_clips=options["num_clips"], num_folds=NUM_FOLDS,
                                      image_size=options["render_size"], seed=options["generator_seed"],
                                      domain=domain)

    return build


@hookimpl
def dferbench_register_datasets(register):
    register("synthetic", _factory(7), options=_options(7), classes=DFEW_CLASSES, profile=PROFILE,
             description="Rendered face clips, 7 classes in DFEW order, 5 subject-independent folds (default)")
    register("synthetic-11", _factory(11), options=_options(11), classes=MAFW_CLASSES, profile=PROFILE,
             description="Rendered face clips, 11 classes in MAFW order, 5 subject-independent folds")
    register("synthetic-wild", _factory(7, "synthetic-wild"), options=_options(7), classes=DFEW_CLASSES,
             profile=PROFILE, presets_like="synthetic",
             description="A shifted domain of synthetic: other identities, wider head poses, darker coloured "
                         "light, more occlusion, noise and blur; 7 classes in DFEW order, 5 folds")


@hookimpl
def dferbench_register_clip_models(register):
    import json

    try:
        rebuild = json.loads(SYNTHETIC_WEIGHTS.with_suffix(".json").read_text())["rebuild_command"]
    except (OSError, ValueError, KeyError):
        rebuild = f"python -m dferbench_plugins.synthetic.pretrain --out {SYNTHETIC_WEIGHTS}"
    register(TINY_CLIP, config=CLIP_DIR / f"{TINY_CLIP}.json", weights={SYNTHETIC_PRETRAINED: SYNTHETIC_WEIGHTS},
             source=f"Rebuild them (from the repository root) with: {rebuild}",
             description="Tiny CLIP pre-trained on rendered faces and captions that never name an emotion")


@hookimpl
def dferbench_register_commands(register):
    from dferbench_plugins.synthetic.cli import pretrain_clip_command

    register(pretrain_clip_command)
