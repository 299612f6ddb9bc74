"""Captions of synthetic frames, for pre-training a tiny CLIP on the synthetic faces.

A caption describes what a frame shows (the facial actions and how strongly, head pose,
lighting, occlusion) in everyday face vocabulary, with varied wording. It never names
an emotion: the point of pre-training is to learn the visual cues, so that class
prompts and descriptors can later be matched to them zero-shot.

``CAPTION_VOCABULARY`` is every content word a caption can contain (``content_words``
splits a sentence the same way), so text meant for the tiny model, such as class
descriptors, can be checked against it.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["CAPTION_STOPWORDS", "CAPTION_VOCABULARY", "caption", "content_words", "vocabulary_of"]

ACTIVE = 0.15  # below this an action is not mentioned
SLIGHT = 0.4  # below this it is "slight", from STRONG on "strong", in between "clear"
STRONG = 0.7

_ADVERBS = {
    "slight": ["slightly", "faintly", "barely", "a little"],
    "clear": ["", "clearly", "noticeably", "visibly"],
    "strong": ["strongly", "sharply", "markedly", "very"],
}
_ADJECTIVES = {
    "slight": ["slight", "faint", "small", "subtle"],
    "clear": ["clear", "noticeable", "visible", "moderate"],
    "strong": ["strong", "pronounced", "marked", "big"],
}

# Noun phrases per facial cue; {adv}/{adj} take the intensity wording.
_PHRASES: dict[str, list[str]] = {
    "brows_up": ["{adv} raised eyebrows", "eyebrows {adv} lifted", "{adv} arched eyebrows",
                 "brows pulled {adv} upward", "{adj} forehead wrinkles under raised brows"],
    "AU1": ["inner eyebrows {adv} raised", "brows {adv} slanted upward in the middle",
            "inner brow corners {adv} lifted", "{adj} upward slant of the inner brows"],
    "AU2": ["outer eyebrows {adv} raised", "outer brow ends {adv} lifted", "{adv} arched outer brows"],
    "AU4": ["{adv} furrowed brows", "brows {adv} drawn together", "{adv} lowered eyebrows",
            "a {adj} crease between the brows", "{adv} knitted eyebrows"],
    "AU5": ["{adv} wide open eyes", "eyes opened {adv} wide", "{adv} raised upper eyelids",
            "a {adj} wide-eyed stare", "{adv} widened eyes"],
    "AU6": ["{adv} raised cheeks", "cheeks {adv} lifted", "{adj} crinkles at the eye corners",
            "{adv} crinkled eyes above raised cheeks"],
    "AU7": ["{adv} narrowed eyes", "eyelids {adv} tightened", "{adv} squinting eyes", "a {adj} squint",
            "{adv} tense lower eyelids", "{adv} glaring eyes"],
    "AU9": ["a {adj} wrinkled nose", "nose {adv} scrunched up", "{adj} wrinkles across the nose",
            "a {adv} wrinkled nose bridge"],
    "AU10": ["upper lip {adv} raised", "a {adj} curled upper lip", "upper lip {adv} pulled up",
             "a {adj} sneer of the upper lip"],
    "AU12": ["a {adj} smile", "lip corners {adv} pulled up", "{adv} upturned mouth corners",
             "a {adj} smile with raised lip corners", "lip corners pulled up into a {adj} smile"],
    "grin": ["a {adj} grin", "a {adj} grin with teeth showing", "a {adj} smile showing the teeth"],
    "AU14": ["a {adj} one-sided smirk", "one lip corner {adv} pulled up", "a {adj} lopsided half-smile",
             "a {adj} dimple at one corner of the mouth", "the {side} mouth corner {adv} tightened"],
    "AU15": ["{adv} downturned mouth corners", "lip corners {adv} pulled down", "a {adj} downturned mouth",
             "mouth corners {adv} drooping"],
    "AU20": ["lips {adv} stretched sideways", "a {adj} stretched mouth", "mouth {adv} pulled wide and tense",
             "lips stretched {adv} back"],
    "AU24": ["{adv} pressed lips", "lips {adv} pressed together", "a {adj} tight-lipped mouth",
             "lips pressed {adv} tightly together", "{adv} pressed lips and a tight jaw"],
    "AU25": ["parted lips", "lips {adv} apart", "a {adj} gap between the lips", "{adv} parted lips"],
    "AU26": ["a {adj} open mouth", "jaw {adv} dropped", "mouth hanging {adv} open",
             "a {adj} dropped jaw with open mouth"],
    "AU43": ["{adv} closed eyes", "{adv} drooping eyelids", "eyes {adv} shut", "{adv} lowered eyelids"],
    "blink": ["eyes closed in a blink", "a blink", "eyelids shut mid-blink"],
}
# Faces with no active action: whole noun phrases, and phrases that follow "with".
_RELAXED = ["a relaxed face", "an expressionless face", "a blank resting face", "a still face",
            "a smooth face without tension"]
_RELAXED_WITH = ["relaxed eyebrows, eyes open normally and closed relaxed lips",
                 "a blank expression", "no visible facial movement", "a closed mouth and smooth brows"]
_SUBJECTS = ["a face", "a cartoon face", "a person", "close-up of a face", "a portrait",
             "a drawn face", "a face photo", "a frame of a face", "a person's face"]
_POSE = {
    "turn": ["head turned to the {dir}", "face turned toward the {dir}", "looking off to the {dir}",
             "a {dir} profile view"],
    "down": ["head bowed", "chin lowered", "a lowered gaze", "downcast eyes", "looking down"],
    "up": ["chin raised", "head tipped back", "looking up"],
    "tilt": ["head tilted to the {dir}", "a tilted head", "head leaning to the {dir}"],
    "front": ["facing the camera", "frontal view", "looking straight ahead", "head upright"],
}
_LIGHT = {
    "side": ["lit from {source}", "light coming from {source}", "a shadow on the {far} side",
             "brighter on the {near} side"],
    "dim": ["dim lighting", "a dark underexposed frame", "low light"],
    "bright": ["bright lighting", "a brightly lit frame", "strong light"],
    "even": ["even lighting", "soft even light", "flat lighting"],
}
_OCCLUSION = {
    "bar": ["a dark bar partly covering the face", "the face partly blocked by a bar",
            "an object across the face", "a stripe hiding part of the face"],
    "hand": ["a hand partly covering the face", "a hand in front of the face",
             "fingers covering part of the face", "the face partly hidden behind a hand"],
}
_SOURCE = {"left": "the left", "right": "the right", "above": "above", "below": "below"}
_NEAR = {"left": "left", "right": "right", "above": "top", "below": "bottom"}
_FAR = {"left": "right", "right": "left", "above": "bottom", "below": "top"}
_SIDE_WORDS = ["left", "right"]

CAPTION_STOPWORDS = frozenset(
    "a an and are as at be but by for from his her in into is it its no not of on or the their to with".split()
)

_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry content (lowercased, hyphenated words kept whole)."""
    return [w for w in _WORD.findall(text.lower()) if w not in CAPTION_STOPWORDS]


def _level(x: float) -> str:
    return "slight" if x < SLIGHT else "clear" if x < STRONG else "strong"


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _fill(template: str, level: str, rng: np.random.Generator, **extra: str) -> str:
    text = template.format(adv=_pick(rng, _ADVERBS[level]), adj=_pick(rng, _ADJECTIVES[level]), **extra)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\ba (?!one)([aeiou])", r"an \1", text)


def _face_cues(au: Mapping[str, float], side: str, rng: np.random.Generator) -> list[str]:
    on = {k: v for k, v in au.items() if v >= ACTIVE}
    cues: list[tuple[str, float]] = []
    if "AU1" in on and "AU2" in on:
        cues.append(("brows_up", (on.pop("AU1") + on.pop("AU2")) / 2))
    if on.get("AU43", 0.0) > 0.9 and rng.uniform() < 0.5:
        cues.append(("blink", on.pop("AU43")))
    opened = max(on.get("AU25", 0.0), on.get("AU26", 0.0))
    if on.get("AU12", 0.0) >= SLIGHT and opened >= 0.3 and rng.uniform() < 0.6:
        cues.append(("grin", on.pop("AU12")))
        on.pop("AU25", None)
    cues.extend(on.items())
    out = []
    for key, value in cues:
        out.append(_fill(_pick(rng, _PHRASES[key]), _level(value), rng, side=side))
    return out


def _pose_cues(pose: Mapping[str, float], rng: np.random.Generator) -> list[str]:
    out = []
    yaw, pitch, roll = pose.get("yaw", 0.0), pose.get("pitch", 0.0), pose.get("roll", 0.0)
    if abs(yaw) > 0.18:
        out.append(_pick(rng, _POSE["turn"]).format(dir="right" if yaw > 0 else "left"))
    if pitch > 0.12:
        out.append(_pick(rng, _POSE["down"]))
    elif pitch < -0.12:
        out.append(_pick(rng, _POSE["up"]))
    if abs(roll) > 6.0:
        out.append(_pick(rng, _POSE["tilt"]).format(dir="right" if roll > 0 else "left"))
    if not out and rng.uniform() < 0.5:
        out.append(_pick(rng, _POSE["front"]))
    return out


def _light_cues(light: Mapping[str, Any], rng: np.random.Generator) -> list[str]:
    out = []
    d = str(light.get("direction", "above"))
    if float(light.get("strength", 0.0)) > 0.2 and d in _SOURCE:
        out.append(_pick(rng, _LIGHT["side"]).format(source=_SOURCE[d], near=_NEAR[d], far=_FAR[d]))
    brightness = float(light.get("brightness", 1.0))
    if brightness < 0.8:
        out.append(_pick(rng, _LIGHT["dim"]))
    elif brightness > 1.05:
        out.append(_pick(rng, _LIGHT["bright"]))
    elif not out and rng.uniform() < 0.3:
        out.append(_pick(rng, _LIGHT["even"]))
    return out


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def caption(state: Mapping[str, Any], rng: np.random.Generator) -> str:
    """Describe one frame's state (``synthetic.frame_state``) in a varied sentence."""
    au = state.get("au", {})
    side = state.get("au_side", {}).get("AU14", _pick(rng, _SIDE_WORDS))
    face = _face_cues(au, side, rng)
    if rng.uniform() < 0.5:
        face = [face[i] for i in rng.permutation(len(face))]
    scene = _pose_cues(state.get("pose", {}), rng) + _light_cues(state.get("lighting", {}), rng)
    occ = state.get("occlusion")
    if occ:
        scene.append(_pick(rng, _OCCLUSION[occ["kind"]]))
    subject = _pick(rng, _SUBJECTS)

    if not face:
        if rng.uniform() < 0.5:
            return _finish(_pick(rng, _RELAXED), scene, rng)
        return _finish(f"{subject} with {_pick(rng, _RELAXED_WITH)}", scene, rng)
    style = int(rng.integers(4))
    if style == 0:
        text = f"{subject} with {_join(face)}"
    elif style == 1:
        text = f"{subject}: {', '.join(face)}"
    elif style == 2:
        text = f"{_join(face)}"
    else:
        text = f"{subject} showing {_join(face)}"
    return _finish(text, scene, rng)


def _finish(text: str, scene: list[str], rng: np.random.Generator) -> str:
    if scene:
        sep = _pick(rng, ["; ", ", ", ". "])
        tail = _join(scene) if sep != ". " else _join(scene).capitalize()
        text = f"{text}{sep}{tail}"
    text = re.sub(r"\s+", " ", text).strip()
    return text[0].upper() + text[1:] + "."


def _vocabulary() -> frozenset[str]:
    texts: list[str] = []
    for group in (_PHRASES, _POSE, _LIGHT, _OCCLUSION):
        for options in group.values():
            texts.extend(options)
    texts += _SUBJECTS + _SIDE_WORDS + _RELAXED + _RELAXED_WITH + ["showing"]
    texts += list(_SOURCE.values()) + list(_NEAR.values())
    for words in list(_ADVERBS.values()) + list(_ADJECTIVES.values()):
        texts.extend(words)
    words: set[str] = set()
    for t in texts:
        words.update(content_words(re.sub(r"\{\w+\}", " ", t)))
    return frozenset(words)


CAPTION_VOCABULARY: frozenset[str] = _vocabulary()


def vocabulary_of(texts: Iterable[str]) -> set[str]:
    """Content words of several texts (handy to compare against ``CAPTION_VOCABULARY``)."""
    out: set[str] = set()
    for t in texts:
        out.update(content_words(t))
    return out
