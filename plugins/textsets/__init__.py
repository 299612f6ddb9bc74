"""Built-in text sets: what text-based models read for each expression class."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from dferbench import hookimpl

# A face-specific ensemble in the manner of CLIP_benchmark's templates, for nouns.
FACE_TEMPLATES = (
    "a photo of a face showing {}.",
    "a face expressing {}.",
    "an expression of {}.",
    "a photo of {}.",
    "a close-up photo of a face showing {}.",
    "a person's face showing {}.",
)


@cache
def descriptors() -> dict[str, str]:
    from dferbench import read_toml

    return read_toml(Path(__file__).parent / "descriptors.toml")["descriptors"]


def _template(template: str):
    def texts(classes: list[str]) -> list[list[str]]:
        return [[template.format(c)] for c in classes]

    return texts


def descriptor_texts(classes: list[str]) -> list[list[str]]:
    table = descriptors()
    missing = [c for c in classes if c not in table]
    if missing:
        raise KeyError(f"the descriptors text set has no sentence for {missing}; known classes: {sorted(table)}")
    return [[table[c]] for c in classes]


def ensemble_texts(classes: list[str]) -> list[list[str]]:
    return [[t.format(c) for t in FACE_TEMPLATES] for c in classes]


@hookimpl
def dferbench_register_prompts(register):
    register("class-names", _template("{}."), description='The class name alone: "happiness."')
    register("expression-of", _template("an expression of {}."), description='"an expression of happiness."')
    register("photo-of", _template("a photo of {}."), description='"a photo of happiness."')
    register("descriptors", descriptor_texts,
             description="LLM-written visual cues per class (DFER-CLIP's default text type)")
    register("face-templates", ensemble_texts,
             description=f"An ensemble of {len(FACE_TEMPLATES)} face templates, averaged per class")


@hookimpl
def dferbench_register_commands(register):
    from dferbench_plugins.textsets.cli import describe_command

    register(describe_command)
