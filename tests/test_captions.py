"""Captions of synthetic frames: no class words, varied wording, a closed vocabulary."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dferbench_plugins.synthetic.captions import CAPTION_VOCABULARY, caption, content_words
from dferbench_plugins.synthetic.render import (
    ACTION_UNITS,
    MAFW_CLASSES,
    apex_frame,
    clip_params,
    frame_state,
    make_synthetic_dataset,
)

# Class names and their obvious forms; stems catch "happily", "fearfully", "disappointing"...
BANNED = re.compile(
    r"\b(happ\w*|joy\w*|sad\w*|sorrow\w*|ang(?:er|ry|rily)\w*|mad|furious|surpris\w*|shock\w*|"
    r"disgust\w*|fear\w*|afraid|scared|terrified|contempt\w*|scorn\w*|anxi\w*|nervous\w*|worr\w*|"
    r"helpless\w*|disappoint\w*|neutral\w*|emotion\w*)\b"
)


def random_state(rng: np.random.Generator) -> dict:
    """A state with arbitrary values, including extremes the generator rarely produces."""
    au = {k: float(rng.choice([0.0, rng.uniform(0, 1), 1.0], p=[0.5, 0.4, 0.1])) for k in ACTION_UNITS}
    return {
        "au": au,
        "au_side": {"AU14": str(rng.choice(["left", "right"]))},
        "pose": {"yaw": rng.uniform(-0.5, 0.5), "pitch": rng.uniform(-0.3, 0.3), "roll": rng.uniform(-15, 15),
                 "dx": 0.0, "dy": 0.0, "scale": 1.0},
        "lighting": {"direction": str(rng.choice(["left", "right", "above", "below"])),
                     "strength": rng.uniform(0, 0.35), "brightness": rng.uniform(0.7, 1.15)},
        "occlusion": None if rng.uniform() < 0.7 else {"kind": str(rng.choice(["bar", "hand"])), "x": 0.0, "y": 0.0},
    }


@pytest.fixture(scope="module")
def captions() -> list[str]:
    rng = np.random.default_rng(0)
    out = [caption(random_state(rng), rng) for _ in range(3000)]
    ds = make_synthetic_dataset(num_classes=11, num_clips=300, num_folds=3, seed=2)
    for rec in ds.split(1, "train") + ds.split(1, "test"):
        p = clip_params(rec)
        for t in {0, apex_frame(p), rec.n_frames - 1, int(rng.integers(rec.n_frames))}:
            out.append(caption(frame_state(p, t), rng))
    return out


def test_captions_never_name_a_class(captions: list[str]) -> None:
    assert len(captions) > 4000
    for text in captions:
        assert not BANNED.search(text.lower()), text
        assert not any(name in text.lower() for name in MAFW_CLASSES), text


def test_vocabulary_has_no_class_words() -> None:
    assert not [w for w in CAPTION_VOCABULARY if BANNED.search(w)]


def test_captions_vary(captions: list[str]) -> None:
    assert len(set(captions)) > 0.9 * len(captions)
    rng = np.random.default_rng(1)
    state = random_state(np.random.default_rng(7))
    assert len({caption(state, rng) for _ in range(30)}) >= 20
    assert len({text.split()[0] for text in captions}) >= 10  # openings vary too


def test_captions_use_everyday_face_words(captions: list[str]) -> None:
    words = set()
    for text in captions:
        words.update(content_words(text))
    for w in ["smile", "grin", "furrowed", "raised", "eyebrows", "wrinkled", "nose", "narrowed", "parted",
              "open", "pressed", "downturned", "one-sided", "smirk", "wide", "cheeks", "head", "lit", "hand"]:
        assert w in words, w


def test_vocabulary_is_closed_and_covered(captions: list[str]) -> None:
    used: set[str] = set()
    for text in captions:
        used.update(content_words(text))
    assert used <= CAPTION_VOCABULARY, sorted(used - CAPTION_VOCABULARY)
    assert len(used) >= 0.97 * len(CAPTION_VOCABULARY), sorted(CAPTION_VOCABULARY - used)


def test_caption_reflects_the_state() -> None:
    rng = np.random.default_rng(3)
    relaxed = random_state(rng)
    relaxed["au"] = {k: 0.0 for k in ACTION_UNITS}
    for _ in range(20):
        text = caption(relaxed, rng).lower()
        assert not re.search(r"smil|grin|furrow|frown|smirk|wrinkl|squint|pressed lips|open mouth", text), text
    smiling = dict(relaxed, au={**relaxed["au"], "AU12": 0.9, "AU6": 0.8})
    texts = [caption(smiling, rng).lower() for _ in range(20)]
    assert all(re.search(r"smil|grin|corners .*(up|upturned)|upturned|cheeks", t) for t in texts), texts


def test_caption_is_deterministic_given_the_rng() -> None:
    state = random_state(np.random.default_rng(5))
    a = caption(state, np.random.default_rng(11))
    assert a == caption(state, np.random.default_rng(11))
    assert a[0].isupper() and a.endswith(".")
