"""What a synthetic clip shows: facial actions per class, domains, identities, and each
clip's parameters, as pure functions of its source (see :mod:`dferbench_plugins.synthetic.render`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from dferbench import MAFW_CLASSES, ClipRecord


ACTION_UNITS: dict[str, str] = {
    "AU1": "inner brow raiser",
    "AU2": "outer brow raiser",
    "AU4": "brow lowerer",
    "AU5": "upper lid raiser",
    "AU6": "cheek raiser",
    "AU7": "lid tightener",
    "AU9": "nose wrinkler",
    "AU10": "upper lip raiser",
    "AU12": "lip corner puller",
    "AU14": "dimpler, one side only (the clip's smirk side)",
    "AU15": "lip corner depressor",
    "AU20": "lip stretcher",
    "AU24": "lip presser",
    "AU25": "lips part",
    "AU26": "jaw drop",
    "AU43": "eyes closed (drooping lids, blinks)",
}
AU_KEYS = tuple(ACTION_UNITS)

_STARTLE = {"AU1": 0.85, "AU2": 0.8, "AU4": 0.25, "AU5": 0.85, "AU20": 0.3, "AU26": 0.7}

# Apex weight of each unit per class; the clip intensity and per-unit jitter scale them.
EMOTION_AUS: dict[str, dict[str, float]] = {
    "happiness": {"AU6": 0.8, "AU12": 1.0, "AU25": 0.35},
    "sadness": {"AU1": 0.9, "AU4": 0.55, "AU15": 0.85, "AU43": 0.3},
    "neutral": {},
    "anger": {"AU4": 1.0, "AU5": 0.35, "AU7": 0.8, "AU24": 0.8},
    "surprise": dict(_STARTLE),
    "disgust": {"AU4": 0.4, "AU7": 0.3, "AU9": 1.0, "AU10": 0.8, "AU15": 0.45},
    "fear": dict(_STARTLE),
    "contempt": {"AU14": 1.0, "AU12": 0.15, "AU7": 0.2},
    "anxiety": {"AU1": 0.6, "AU4": 0.5, "AU7": 0.3, "AU20": 0.4, "AU24": 0.5},
    "helplessness": {"AU1": 0.8, "AU2": 0.25, "AU15": 0.6, "AU25": 0.5, "AU43": 0.4},
    "disappointment": {"AU4": 0.3, "AU15": 0.7, "AU24": 0.55, "AU43": 0.2},
}

# Head bowing that grows with the expression (units of ``pitch``).
_PITCH_TREND = {"sadness": (0.0, 0.1), "helplessness": (0.1, 0.25), "disappointment": (0.05, 0.2)}

RGB = tuple[float, float, float]

_STREAM_IDENTITY, _STREAM_CLIP, _STREAM_NOISE, _STREAM_LENGTH, _STREAM_LAYOUT = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Domain:
    """The nuisance distributions of a synthetic domain. Ranges are ``(low, high)`` of
    uniform draws; poses in radians and fractions of the half image; ``blur`` is a
    camera blur sigma in pixels at 64 px (scaled with the render size).

    ``stream`` offsets the random streams of identities, clips, lengths and fold
    layout, so two domains share no identity and no clip. The defaults are the
    ``synthetic`` domain.
    """

    stream: int = 0
    yaw: float = 0.3
    pitch: float = 0.15
    roll_sd: float = 0.08
    roll_max: float = 0.2
    dx: float = 0.06
    dy: tuple[float, float] = (-0.04, 0.08)
    scale: tuple[float, float] = (1.05, 1.28)
    drift_amp: tuple[float, ...] = (0.12, 0.08, 0.06, 0.03, 0.03, 0.03)  # yaw, pitch, roll, dx, dy, scale
    light_strength: tuple[float, float] = (0.0, 0.35)
    brightness: tuple[float, float] = (0.7, 1.15)
    cast: tuple[float, float] = (0.9, 1.1)
    noise: tuple[float, float] = (0.01, 0.045)
    occlusion: float = 0.15  # probability of an occluder
    blur: tuple[float, float] = (0.0, 0.0)


DOMAINS: dict[str, Domain] = {
    "synthetic": Domain(),
    "synthetic-wild": Domain(
        stream=10, yaw=0.4, pitch=0.2, roll_sd=0.11, roll_max=0.28, dx=0.08, dy=(-0.06, 0.1),
        scale=(1.0, 1.3), drift_amp=(0.15, 0.1, 0.08, 0.04, 0.04, 0.04), light_strength=(0.2, 0.5),
        brightness=(0.55, 0.95), cast=(0.8, 1.2), noise=(0.025, 0.07), occlusion=0.35, blur=(0.2, 0.8),
    ),
}
"""Synthetic domains by the name their clip sources start with."""


# --------------------------------------------------------------------------------------
# Generator parameters


@dataclass(frozen=True)
class Identity:
    """A subject's face. Lengths are in face units (the face spans about [-0.6, 0.6])."""

    face_w: float
    face_h: float
    skin: RGB
    hair: RGB
    hairline: float
    eye_sep: float
    eye_y: float
    eye_w: float
    eye_h: float
    iris: RGB
    brow_gap: float
    brow_len: float
    brow_thick: float
    brow_arch: float
    nose_y: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    lip: RGB
    rest_curve: float  # resting mouth-corner offset (positive: corners down)
    rest: Mapping[str, float] = field(default_factory=dict)  # resting action intensities


@dataclass(frozen=True)
class ClipParams:
    """Everything that determines a clip's frames.

    Times are normalised to the clip (``tau = t / (n_frames - 1)``) except blinks and
    speech, which run in frames. ``envelope`` is ``(start, onset, hold, offset,
    residual)``; ``reverse`` plays it backwards (fear).
    """

    seed: int
    index: int
    label: int
    emotion: str
    subject: str
    n_frames: int
    identity: Identity
    apex: Mapping[str, float]
    baseline: Mapping[str, float]
    envelope: tuple[float, float, float, float, float]
    reverse: bool
    tremor: tuple[float, float, float]  # amplitude, cycles per clip, phase
    lead: Mapping[str, float]  # actions of a brief early phase (disappointment's smile)
    lead_time: tuple[float, float]  # centre, width
    talk: tuple[float, float, float]  # amplitude, cycles per frame, phase
    blinks: tuple[float, ...]  # frame positions
    smirk_side: int  # +1: AU14 on the image-right mouth corner, -1: image-left
    pose: tuple[float, ...]  # yaw, pitch, roll (rad), dx, dy, scale
    drift: tuple[tuple[float, float, float], ...]  # per pose component: amp, cycles, phase
    pitch_trend: float
    gaze: tuple[float, float]
    light: tuple[float, float, float]  # direction (rad, image coords), strength, brightness
    cast: tuple[float, float, float]  # per-channel gain (may exceed 1)
    noise: float
    background: tuple[RGB, RGB]
    occlusion: Mapping[str, Any] | None
    domain: str = "synthetic"
    blur: float = 0.0  # camera blur sigma, pixels at 64 px


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


def _rgb(values: Any) -> RGB:
    r, g, b = (float(np.clip(v, 0.0, 1.0)) for v in values)
    return r, g, b


def _mix(a: Sequence[float], b: Sequence[float], w: float) -> RGB:
    return _rgb(x + (y - x) * w for x, y in zip(a, b))


def _identity(seed: int, subject_index: int, domain: Domain = DOMAINS["synthetic"]) -> Identity:
    r = _rng(seed, _STREAM_IDENTITY + domain.stream, subject_index)
    tone = r.uniform()
    skin = _mix((0.96, 0.80, 0.68), (0.42, 0.28, 0.20), tone)
    skin = _rgb(c * r.uniform(0.94, 1.06) for c in skin)
    hairs = [(0.08, 0.06, 0.05), (0.30, 0.18, 0.10), (0.75, 0.60, 0.35), (0.55, 0.55, 0.55),
             (0.55, 0.22, 0.10), (0.18, 0.12, 0.08)]
    hair = _rgb(c * r.uniform(0.85, 1.15) for c in hairs[r.integers(len(hairs))])
    irises = [(0.30, 0.18, 0.10), (0.25, 0.40, 0.60), (0.30, 0.45, 0.30), (0.10, 0.08, 0.07)]
    lip = _mix(skin, (0.70, 0.25, 0.28), r.uniform(0.35, 0.7))
    rest: dict[str, float] = {}
    for au in ("AU1", "AU4", "AU7", "AU12", "AU15", "AU24"):
        if r.uniform() < 0.25:
            rest[au] = float(r.uniform(0.0, 0.2))
    return Identity(
        face_w=float(r.uniform(0.5, 0.64)), face_h=float(r.uniform(0.72, 0.84)),
        skin=skin, hair=hair, hairline=float(r.uniform(-0.72, -0.5)),
        eye_sep=float(r.uniform(0.2, 0.27)), eye_y=float(r.uniform(-0.2, -0.1)),
        eye_w=float(r.uniform(0.09, 0.12)), eye_h=float(r.uniform(0.045, 0.065)),
        iris=irises[r.integers(len(irises))], brow_gap=float(r.uniform(0.1, 0.15)),
        brow_len=float(r.uniform(0.17, 0.23)), brow_thick=float(r.uniform(0.025, 0.045)),
        brow_arch=float(r.uniform(0.0, 0.04)), nose_y=float(r.uniform(0.12, 0.2)),
        mouth_y=float(r.uniform(0.36, 0.45)), mouth_w=float(r.uniform(0.17, 0.23)),
        lip_thick=float(r.uniform(0.025, 0.045)), lip=lip,
        rest_curve=float(r.uniform(-0.015, 0.02)), rest=rest,
    )


def _parse_source(source: str) -> tuple[int, int]:
    parts = source.split(":")
    if len(parts) != 3 or parts[0] not in DOMAINS or not (parts[1].isdigit() and parts[2].isdigit()):
        raise ValueError(f"not a synthetic clip source (want '<domain>:<seed>:<index>', domain one of "
                         f"{', '.join(DOMAINS)}): {source!r}")
    return int(parts[1]), int(parts[2])


def _subject_index(record: ClipRecord) -> int:
    s = record.subject or ""
    if not (s.startswith("s") and s[1:].isdigit()):
        raise ValueError(f"clip {record.clip_id}: synthetic subject must look like 's0007', got {s!r}")
    return int(s[1:])


def clip_params(record: ClipRecord) -> ClipParams:
    """Rebuild the generator parameters of a synthetic clip from its record."""
    seed, index = _parse_source(record.source)
    domain = record.source.split(":", 1)[0]
    d = DOMAINS[domain]
    if not 0 <= record.label < len(MAFW_CLASSES):
        raise ValueError(f"clip {record.clip_id}: label {record.label} outside 0..{len(MAFW_CLASSES) - 1}")
    if record.n_frames < 1:
        raise ValueError(f"clip {record.clip_id}: needs at least one frame, got {record.n_frames}")
    emotion = MAFW_CLASSES[record.label]
    ident = _identity(seed, _subject_index(record), d)
    r = _rng(seed, _STREAM_CLIP + d.stream, index)
    n = record.n_frames

    # Expression: subtle clips (low intensity) overlap neutral faces with stray actions.
    intensity = r.uniform(0.2, 1.0)
    pattern = EMOTION_AUS[emotion]
    keep = r.uniform(size=len(pattern)) > 0.15
    if pattern and not keep.any():
        keep[int(np.argmax([w for w in pattern.values()]))] = True
    jitter = r.uniform(0.7, 1.15, size=len(pattern))
    apex = {au: w * intensity * j for (au, w), k, j in zip(pattern.items(), keep, jitter) if k}
    # Real clips are often blends; a blended-in class makes labels ambiguous as in the real sets.
    others = [c for c in MAFW_CLASSES if c != "neutral" and EMOTION_AUS[c] != pattern]
    blend_class, blend = others[int(r.integers(len(others)))], r.uniform(0.2, 0.8)
    if r.uniform() < 0.25:
        for au, w in EMOTION_AUS[blend_class].items():
            apex[au] = apex.get(au, 0.0) + w * intensity * blend
    apex = {au: float(min(1.0, w)) for au, w in apex.items()}

    baseline = dict(ident.rest)
    for au in r.choice(np.array(AU_KEYS[:-1]), size=r.integers(0, 4), replace=False):
        baseline[str(au)] = baseline.get(str(au), 0.0) + float(r.uniform(0.05, 0.35))

    if emotion in ("surprise", "fear"):
        envelope = (r.uniform(0.0, 0.1), r.uniform(0.03, 0.1), r.uniform(0.0, 0.12),
                    r.uniform(0.45, 0.8), r.uniform(0.05, 0.35))
    elif emotion == "disappointment":
        envelope = (r.uniform(0.3, 0.5), r.uniform(0.12, 0.3), r.uniform(0.15, 0.4),
                    r.uniform(0.1, 0.3), r.uniform(0.5, 1.0))
    else:
        envelope = (r.uniform(0.0, 0.35), r.uniform(0.12, 0.4), r.uniform(0.15, 0.5),
                    r.uniform(0.1, 0.35), r.uniform(0.3, 1.0))
    start, onset, hold, offset, residual = (float(v) for v in envelope)

    tremor = (float(r.uniform(0.25, 0.5)), float(r.uniform(2.0, 4.0)), float(r.uniform(0, 2 * np.pi))) \
        if emotion == "anxiety" else (0.0, 0.0, 0.0)
    if emotion == "disappointment":
        lead = {"AU12": float(r.uniform(0.3, 0.6) * intensity + 0.15), "AU6": float(0.2 * intensity)}
        lead_time = (max(0.08, start - 0.15), float(r.uniform(0.06, 0.12)))
    else:
        lead, lead_time = {}, (0.0, 1.0)

    talk = (float(r.uniform(0.15, 0.4)), float(r.uniform(0.08, 0.2)), float(r.uniform(0, 2 * np.pi))) \
        if r.uniform() < 0.3 else (0.0, 0.0, 0.0)
    blinks = tuple(float(b) for b in np.sort(r.uniform(0, max(n - 1, 1), size=r.poisson(n / 35 + 0.2))))
    smirk_side = int(r.choice([-1, 1]))

    pose = (r.uniform(-d.yaw, d.yaw), r.uniform(-d.pitch, d.pitch),
            float(np.clip(r.normal(0, d.roll_sd), -d.roll_max, d.roll_max)),
            r.uniform(-d.dx, d.dx), r.uniform(*d.dy), r.uniform(*d.scale))
    drift = tuple((float(r.uniform(0, a)), float(r.uniform(0.3, 1.5)), float(r.uniform(0, 2 * np.pi)))
                  for a in d.drift_amp)
    lo, hi = _PITCH_TREND.get(emotion, (0.0, 0.0))
    pitch_trend = float(r.uniform(lo, hi)) if hi > 0 else 0.0
    gaze = (float(r.uniform(-0.02, 0.02)), float(r.uniform(-0.012, 0.012)))

    light = (float(r.uniform(0, 2 * np.pi)), float(r.uniform(*d.light_strength)), float(r.uniform(*d.brightness)))
    cast = r.uniform(*d.cast, size=3)
    cast_rgb = (float(cast[0]), float(cast[1]), float(cast[2]))
    noise = float(r.uniform(*d.noise))
    grey = r.uniform(0.15, 0.75, size=(2, 1))
    bg0, bg1 = (_rgb(row) for row in grey + r.uniform(-0.12, 0.12, size=(2, 3)))

    occlusion: dict[str, Any] | None = None
    if r.uniform() < d.occlusion:
        kind = "bar" if r.uniform() < 0.5 else "hand"
        t0 = float(r.uniform(0.0, 0.6))
        to = np.array([r.uniform(-0.3, 0.3), r.uniform(-0.1, 0.5)])
        origin = to + r.uniform(-0.5, 0.5, size=2)
        occlusion = {
            "kind": kind, "t0": t0, "t1": float(min(1.0, t0 + r.uniform(0.2, 0.6))),
            "start": (float(origin[0]), float(origin[1])), "end": (float(to[0]), float(to[1])),
            "angle": float(r.uniform(0, np.pi)),
            "size": (float(r.uniform(0.5, 1.2)), float(r.uniform(0.06, 0.14))) if kind == "bar"
            else (float(r.uniform(0.2, 0.3)), float(r.uniform(0.16, 0.22))),
            "color": _rgb(r.uniform(0.05, 0.5, size=3) if kind == "bar"
                          else np.array(ident.skin) * r.uniform(0.75, 1.15)),
        }

    return ClipParams(
        seed=seed, index=index, label=record.label, emotion=emotion, subject=record.subject or "",
        n_frames=n, identity=ident, apex=apex, baseline=baseline,
        envelope=(start, onset, hold, offset, residual), reverse=emotion == "fear", tremor=tremor,
        lead=lead, lead_time=lead_time, talk=talk, blinks=blinks, smirk_side=smirk_side,
        pose=tuple(float(v) for v in pose), drift=drift, pitch_trend=pitch_trend, gaze=gaze,
        light=light, cast=cast_rgb, noise=noise, background=(bg0, bg1), occlusion=occlusion,
        domain=domain, blur=float(r.uniform(*d.blur)) if d.blur[1] > 0 else 0.0,  # drawn last: none by default
    )
