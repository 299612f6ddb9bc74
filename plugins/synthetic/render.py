"""The embedded benchmark: procedurally rendered cartoon face clips, no files needed.

Every clip is a small face video drawn with numpy. Expressions are composed of facial
actions in the spirit of FACS action units (``ACTION_UNITS``); each class activates the
units FACS/EMFACS associates with it (``EMOTION_AUS``) at a random per-clip intensity,
rising from a neutral face to an apex and (often) falling again, with per-clip timing.
On top of that come nuisances a model must ignore: identity (face shape, skin, hair,
eye spacing, resting expression), head pose and its drift, lighting, noise, blinks,
speech-like mouth movement, a few weak stray actions, and occasional occlusion by a bar
or a hand.

Classes that differ only in their dynamics: **surprise and fear** share one appearance
(brows raised, upper lids raised, jaw dropped, with a weak brow lowerer and lip
stretcher, i.e. the overlap of their FACS prototypes) and one distribution of timing
parameters, but surprise snaps to its apex within the first frames and fades slowly,
while fear is the exact time reversal: it creeps up slowly and peaks near the end.
Their frames form the same multiset in distribution, so a frame-averaged model sees
nothing to separate them; only frame order does. The other classes overlap on purpose
(sadness / helplessness / disappointment, anger / disgust / anxiety, happiness /
contempt, weak expressions versus neutral faces with stray actions) so a tiny model
does not reach 100%. Disappointment also has an order cue: a brief early smile that
collapses into pressed, downturned lips.

Domains (:data:`DOMAINS`) set the nuisance distributions. ``synthetic`` is the
benchmark's; ``synthetic-wild`` is a shifted domain for transfer tests: other identities
(random streams of its own), wider head poses and drift, darker and more directional
light with colour casts, more occlusion, more sensor noise and a camera blur. Expressions,
their timing and the class proportions are the same in both.

Everything is a pure function of ``(domain, seed, clip index)`` and ``(domain, seed,
subject index)``: a clip's ``source`` is ``"<domain>:<seed>:<clip index>"`` (e.g.
``"synthetic:0:17"``), and the reader renders exactly the requested frames, identically
in any process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dferbench.data.records import ClipRecord, DFERDataset
from dferbench_plugins.synthetic import DFEW_CLASSES, MAFW_CLASSES

__all__ = [
    "ACTION_UNITS",
    "DFEW_CLASSES",
    "DOMAINS",
    "EMOTION_AUS",
    "MAFW_CLASSES",
    "ClipParams",
    "Domain",
    "Identity",
    "SyntheticReader",
    "apex_frame",
    "clip_params",
    "frame_state",
    "make_synthetic_dataset",
    "render_frames",
    "write_synthetic_tree",
]

# Fold-1 training counts of the real sets (datasets.md), used as class proportions.
DFEW_FOLD1_COUNTS = (1956, 1515, 2135, 1738, 1175, 116, 721)
MAFW_FOLD1_COUNTS = (993, 1176, 910, 1112, 857, 511, 500, 188, 732, 209, 145)

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


# --------------------------------------------------------------------------------------
# Per-frame state


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(tau: np.ndarray, start: float, onset: float, hold: float, offset: float,
              residual: float) -> np.ndarray:
    rise = _smoothstep((tau - start) / onset)
    fall = _smoothstep((tau - (start + onset + hold)) / offset)
    return rise * (1.0 - (1.0 - residual) * fall)


def _expression(p: ClipParams, t: np.ndarray) -> np.ndarray:
    tau = t / max(p.n_frames - 1, 1)
    env = _envelope(1.0 - tau if p.reverse else tau, *p.envelope)
    amp, cycles, phase = p.tremor
    if amp:
        env = env * (1.0 - amp * 0.5 * (1.0 + np.sin(2 * np.pi * cycles * tau + phase)))
    return env


def _tracks(p: ClipParams, t: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame generator state for frame indices ``t`` (float arrays of len(t))."""
    t = np.asarray(t, dtype=np.float64)
    tau = t / max(p.n_frames - 1, 1)
    env = _expression(p, t)
    out: dict[str, np.ndarray] = {}
    for au in AU_KEYS:
        out[au] = p.baseline.get(au, 0.0) + p.apex.get(au, 0.0) * env
    if p.lead:
        centre, width = p.lead_time
        bump = np.exp(-(((tau - centre) / width) ** 2))
        for au, w in p.lead.items():
            out[au] = out[au] + w * bump
    amp, freq, phase = p.talk
    if amp:
        wave = 0.5 * (1.0 + np.sin(2 * np.pi * freq * t + phase))
        out["AU25"] = out["AU25"] + 0.7 * amp
        out["AU26"] = out["AU26"] + amp * wave
    for b in p.blinks:
        out["AU43"] = out["AU43"] + np.exp(-(((t - b) / 0.7) ** 2))
    for au in AU_KEYS:
        out[au] = np.clip(out[au], 0.0, 1.0)

    names = ("yaw", "pitch", "roll", "dx", "dy", "scale")
    for name, base, (a, cyc, ph) in zip(names, p.pose, p.drift):
        out[name] = base + a * np.sin(2 * np.pi * cyc * tau + ph)
    out["pitch"] = out["pitch"] + p.pitch_trend * env
    out["gaze_x"] = p.gaze[0] + 0.03 * out["yaw"]
    out["gaze_y"] = p.gaze[1] + 0.015 * out["pitch"]

    if p.occlusion is not None:
        o = p.occlusion
        span = max(o["t1"] - o["t0"], 1e-6)
        w = np.clip((tau - o["t0"]) / (0.5 * span), 0.0, 1.0)  # slides in, then stays
        out["occ_on"] = ((tau >= o["t0"]) & (tau <= o["t1"])).astype(np.float64)
        out["occ_x"] = o["start"][0] + (o["end"][0] - o["start"][0]) * w
        out["occ_y"] = o["start"][1] + (o["end"][1] - o["start"][1]) * w
    else:
        out["occ_on"] = np.zeros_like(t)
    return out


def frame_state(params: ClipParams, t: int) -> dict[str, Any]:
    """What frame ``t`` shows, as plain numbers (the input of ``captions.caption``).

    Returns a dict with
    - ``au``: action-unit intensities in 0..1, keyed like ``ACTION_UNITS``;
    - ``au_side``: the side of one-sided actions (``{"AU14": "left" | "right"}``, image sides);
    - ``pose``: ``yaw`` (about -0.45..0.45, positive: face turned to image right),
      ``pitch`` (positive: head bowed), ``roll`` in degrees (positive: head tilted to
      image right), ``dx``/``dy`` (shift, fraction of the half image) and ``scale``;
    - ``lighting``: ``direction`` (``"left" | "right" | "above" | "below"``: where the
      light comes from), ``strength`` (0..0.35 side gradient) and ``brightness`` (0.7..1.15);
    - ``occlusion``: None, or ``{"kind": "bar" | "hand", "x": ..., "y": ...}`` (centre).
    """
    if not 0 <= t < params.n_frames:
        raise ValueError(f"frame {t} outside 0..{params.n_frames - 1} of synthetic clip {params.index}")
    tr = _tracks(params, np.array([t]))
    angle, strength, brightness = params.light
    c, s = math.cos(angle), math.sin(angle)
    if abs(c) >= abs(s):
        direction = "right" if c > 0 else "left"
    else:
        direction = "below" if s > 0 else "above"
    occ = None
    if tr["occ_on"][0] > 0 and params.occlusion is not None:
        occ = {"kind": params.occlusion["kind"], "x": float(tr["occ_x"][0]), "y": float(tr["occ_y"][0])}
    return {
        "au": {au: float(tr[au][0]) for au in AU_KEYS},
        "au_side": {"AU14": "right" if params.smirk_side > 0 else "left"},
        "pose": {"yaw": float(tr["yaw"][0]), "pitch": float(tr["pitch"][0]),
                 "roll": float(np.degrees(tr["roll"][0])), "dx": float(tr["dx"][0]),
                 "dy": float(tr["dy"][0]), "scale": float(tr["scale"][0])},
        "lighting": {"direction": direction, "strength": strength, "brightness": brightness},
        "occlusion": occ,
    }


def apex_frame(params: ClipParams) -> int:
    """Index of the frame where the clip's expression is strongest."""
    return int(np.argmax(_expression(params, np.arange(params.n_frames, dtype=np.float64))))


# --------------------------------------------------------------------------------------
# Rendering


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(c, c, indexing="ij")
    return x[None], y[None]


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    # Seeding a generator per frame costs more than drawing the frame; instead each frame
    # takes a rolled slice of a fixed bank, chosen by a hash of (seed, clip, frame).
    return _rng(0, _STREAM_NOISE, size).standard_normal((31, 3, size, size), dtype=np.float32)


def _mix64(*keys: int) -> int:
    h = 0x9E3779B97F4A7C15
    for k in keys:
        h = (h ^ (k & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
        h = h * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h


def _paint(img: np.ndarray, alpha: np.ndarray, color: Any) -> None:
    """Blend ``color`` over planar ``img [3, T, h, w]`` with coverage ``alpha [T, h, w]``."""
    color = np.asarray(color, dtype=np.float32)
    for c in range(3):
        ch = img[c]
        ch += alpha * (color[c] - ch)


def _ellipse_d(u: np.ndarray, v: np.ndarray, a: Any, b: Any) -> np.ndarray:
    # approximate signed distance, exact on the axes
    return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * np.minimum(a, b)


class _Canvas:
    """A batch of frames in head coordinates, painted window by window.

    Every facial feature is drawn only inside the pixel window that can contain it in
    any of the frames, which keeps a 16-frame clip at a few milliseconds.
    """

    def __init__(self, size: int, col: Mapping[str, np.ndarray], tracks: Mapping[str, np.ndarray],
                 background: Sequence[Sequence[float]]) -> None:
        self.size = size
        x, y = _grid(size)
        n = len(tracks["yaw"])
        bg0, bg1 = (np.asarray(c, np.float32)[:, None, None, None] for c in background)
        gradient = bg0 + (bg1 - bg0) * (y[None] + 1.0) * 0.5  # [3, 1, S, S]
        self.img = np.array(np.broadcast_to(gradient, (3, n, size, size)))  # planar [3, T, S, S]
        self.tracks = tracks
        roll, scale = col["roll"], col["scale"]
        xs, ys = (x - col["dx"]) / scale, (y - col["dy"]) / scale
        cr, sr = np.cos(roll), np.sin(roll)
        self.u = cr * xs + sr * ys
        self.v = -sr * xs + cr * ys
        self.uf = self.u - 0.22 * col["yaw"]
        self.vf = self.v - 0.15 * col["pitch"]
        self.aa = (2.0 / size) / scale * 0.9
        self.face_in: np.ndarray | None = None

    def window(self, cv: float, ru: float, rv: float) -> tuple[slice, slice, slice]:
        """Pixel window holding the face-coordinate box ``|uf| <= ru, |vf - cv| <= rv``."""
        tr = self.tracks
        cr, sr, s = np.cos(tr["roll"]), np.sin(tr["roll"]), tr["scale"]
        u0, v0 = 0.22 * tr["yaw"], cv + 0.15 * tr["pitch"]
        cx = (cr * u0 - sr * v0) * s + tr["dx"]
        cy = (sr * u0 + cr * v0) * s + tr["dy"]
        hx = s * (np.abs(cr) * ru + np.abs(sr) * rv)
        hy = s * (np.abs(sr) * ru + np.abs(cr) * rv)
        k = self.size / 2.0

        def span(lo: float, hi: float) -> slice:
            a = int(np.floor((lo + 1.0) * k - 0.5)) - 2
            b = int(np.ceil((hi + 1.0) * k - 0.5)) + 3
            return slice(min(max(a, 0), self.size), min(max(b, 0), self.size))

        return slice(None), span(float((cy - hy).min()), float((cy + hy).max())), \
            span(float((cx - hx).min()), float((cx + hx).max()))

    def alpha(self, d: np.ndarray) -> np.ndarray:
        return np.clip(0.5 - d / self.aa, 0.0, 1.0)

    def paint(self, w: tuple[slice, slice, slice], d: np.ndarray, color: Any, strength: Any = 1.0,
              inside_face: bool = True) -> None:
        a = self.alpha(d)
        if not np.isscalar(strength) or strength != 1.0:
            a = a * strength
        if inside_face and self.face_in is not None:
            a = a * self.face_in[w]
        _paint(self.img[(slice(None),) + w], a, color)


def render_frames(params: ClipParams, indices: Sequence[int], image_size: int = 64) -> np.ndarray:
    """Render frames ``indices`` of a clip: uint8 ``[len(indices), S, S, 3]``."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= params.n_frames):
        bad = [int(i) for i in idx if not 0 <= i < params.n_frames]
        raise ValueError(f"frame indices {bad[:5]} outside 0..{params.n_frames - 1} "
                         f"of synthetic clip {params.subject}_c{params.index:04d}")
    size = int(image_size)
    if idx.size == 0:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    tr = _tracks(params, idx.astype(np.float64))
    col = {k: v.astype(np.float32)[:, None, None] for k, v in tr.items()}
    au = {k: col[k] for k in AU_KEYS}
    ident = params.identity
    cv = _Canvas(size, col, tr, params.background)
    u, v = cv.u, cv.v
    hair = np.asarray(ident.hair, np.float32)
    skin = np.asarray(ident.skin, np.float32)
    dark = (0.0, 0.0, 0.0)
    full = (slice(None), slice(None), slice(None))

    # head: hair behind, neck, face with a little shading, later the fringe
    fw = ident.face_w * (1.0 - 0.12 * np.abs(col["yaw"]))
    fh = np.where(v > 0, ident.face_h + 0.1 * au["AU26"], ident.face_h)
    cv.paint(full, _ellipse_d(u, v + 0.08, fw * 1.1, ident.face_h * 0.98), hair)
    cv.paint(full, np.maximum(np.abs(u) - ident.face_w * 0.42, 0.5 - v), skin * 0.8)
    d_face = _ellipse_d(u, v, fw, fh)
    shade = 1.0 - 0.2 * np.clip((u / fw) ** 2 + (v / fh) ** 2, 0.0, 1.0)
    cv.paint(full, d_face, skin[:, None, None, None] * shade[None])
    cv.face_in = cv.alpha(d_face)

    ey, es, ew, eh = ident.eye_y, ident.eye_sep, ident.eye_w, ident.eye_h
    brow_base = ey - ident.brow_gap

    lift = np.clip(0.6 * au["AU1"] + 0.6 * au["AU2"], 0.0, 1.0)
    if float(lift.max()) > 0.02:
        w = cv.window(brow_base - 0.19, 0.3, 0.1)
        uf, vf = cv.uf[w], cv.vf[w]
        for k in range(3):
            vl = brow_base - 0.13 - 0.06 * k + 0.25 * uf * uf
            cv.paint(w, np.maximum(np.abs(vf - vl) - 0.007, np.abs(uf) - (0.26 - 0.04 * k)), dark, 0.5 * lift)
    if float(au["AU4"].max()) > 0.02:
        w = cv.window(brow_base + 0.03, 0.06, 0.07)
        d = np.maximum(np.abs(np.abs(cv.uf[w]) - 0.035) - 0.008, np.abs(cv.vf[w] - (brow_base + 0.03)) - 0.05)
        cv.paint(w, d, dark, 0.6 * au["AU4"])

    # cheeks
    w = cv.window(ey + 0.19, es + 0.32, 0.24)
    auf, vf = np.abs(cv.uf[w]), cv.vf[w]
    blush = np.exp(-(((auf - es - 0.02) / 0.11) ** 2 + ((vf - (ey + 0.22 - 0.07 * au["AU6"])) / 0.07) ** 2))
    _paint(cv.img[(slice(None),) + w], blush * (0.1 + 0.35 * au["AU6"]) * cv.face_in[w], (0.85, 0.35, 0.35))

    mw = ident.mouth_w * (1.0 + 0.25 * au["AU12"] + 0.3 * au["AU20"] - 0.15 * au["AU24"] + 0.08 * au["AU14"])
    side = np.float32(params.smirk_side)
    dy_both = ident.rest_curve - 0.1 * au["AU12"] + 0.08 * au["AU15"] - 0.02 * au["AU20"]
    dy_smirk = dy_both - 0.09 * au["AU14"]
    my = ident.mouth_y + 0.03 * au["AU26"]
    ny = ident.nose_y - 0.03 * au["AU9"] - 0.02 * au["AU10"]
    mw_max = ident.mouth_w * 1.65

    fold = np.clip(0.7 * au["AU12"] + 0.8 * au["AU10"] + 0.4 * au["AU9"] + 0.3 * au["AU6"], 0.0, 1.0)
    if float(fold.max()) > 0.02:
        w = cv.window((ident.nose_y + ident.mouth_y) / 2, mw_max + 0.08, (ident.mouth_y - ident.nose_y) / 2 + 0.15)
        px, py = np.abs(cv.uf[w]) - 0.1, cv.vf[w] - ny
        qx, qy = mw + 0.04 - 0.1, my + dy_both * 0.5 - ny
        h = np.clip((px * qx + py * qy) / (qx * qx + qy * qy), 0.0, 1.0)
        cv.paint(w, np.sqrt((px - h * qx) ** 2 + (py - h * qy) ** 2) - 0.008, dark, 0.45 * fold)

    # nose: a side shadow, nostrils, wrinkles on the bridge
    w = cv.window((ey + ident.nose_y) / 2, 0.12, (ident.nose_y - ey) / 2 + 0.06)
    uf, vf = cv.uf[w], cv.vf[w]
    auf = np.abs(uf)
    cv.paint(w, np.maximum(np.abs(uf - 0.035) - 0.012, np.abs(vf - (ey + ny) * 0.5 - 0.02) - (ny - ey) * 0.45),
             dark, 0.18)
    cv.paint(w, _ellipse_d(auf - 0.055, vf - ny, 0.035 * (1.0 + 0.35 * au["AU9"]), 0.018), skin * 0.35, 0.75)
    if float(au["AU9"].max()) > 0.02:
        for k in range(2):
            cv.paint(w, np.maximum(np.abs(vf - (ey + 0.03 + 0.045 * k)) - 0.007, auf - 0.06), dark, 0.6 * au["AU9"])

    # eyes: white, iris, pupil, upper lid line, lower lid line
    w = cv.window(ey, es + ew + 0.06, 2.2 * eh + 0.03)
    uf, vf = cv.uf[w], cv.vf[w]
    du = np.abs(uf) - es
    s = du / ew
    k = np.sqrt(np.clip(1.0 - s * s, 0.0, 1.0))
    closed = au["AU43"]
    h_up = eh * np.clip(1.0 + 0.9 * au["AU5"] - 0.45 * au["AU7"] - 0.2 * au["AU4"] - 0.2 * au["AU6"], 0.05, 2.0)
    h_up = h_up * (1.0 - 0.97 * closed)
    h_lo = eh * np.clip(0.9 - 0.45 * au["AU6"] - 0.45 * au["AU7"], 0.2, 1.0) * (1.0 - 0.9 * closed)
    top, bot = ey - h_up * k, ey + h_lo * k
    eye_a = cv.alpha(np.maximum(np.abs(du) - ew, np.maximum(top - vf, vf - bot)))
    sub = cv.img[(slice(None),) + w]
    _paint(sub, eye_a, (0.93, 0.92, 0.88))
    ix = uf - np.where(uf > 0, es, -es).astype(np.float32) - col["gaze_x"]
    iy = vf - ey - col["gaze_y"]
    r_iris = np.sqrt(ix * ix + iy * iy)
    _paint(sub, cv.alpha(r_iris - eh * 0.95) * eye_a, ident.iris)
    _paint(sub, cv.alpha(r_iris - eh * 0.45) * eye_a, (0.03, 0.03, 0.03))
    cv.paint(w, np.maximum(np.abs(vf - top) - 0.012, np.abs(du) - ew * 1.05), (0.08, 0.05, 0.05), 0.85)
    cv.paint(w, np.maximum(np.abs(vf - bot) - 0.006, np.abs(du) - ew * 0.9), dark, 0.3)

    # brows: AU1 lifts the inner ends, AU2 the outer ends, AU4 pulls them down and together
    w = cv.window(brow_base - 0.07, es + ident.brow_len * 0.5 + 0.05, 0.17)
    auf, vf = np.abs(cv.uf[w]), cv.vf[w]
    u_in = es - ident.brow_len * 0.5 - 0.04 * au["AU4"]
    u_out = es + ident.brow_len * 0.5
    y_in = brow_base - 0.16 * au["AU1"] + 0.1 * au["AU4"] - 0.03 * au["AU2"]
    y_out = brow_base - 0.15 * au["AU2"] + 0.04 * au["AU4"] - 0.03 * au["AU1"]
    sb = (auf - u_in) / (u_out - u_in)
    arch = ident.brow_arch * (1.0 + au["AU2"] - 0.6 * au["AU4"])
    yb = y_in + (y_out - y_in) * sb - arch * 4.0 * sb * (1.0 - sb)
    d = np.maximum(np.abs(vf - yb) - ident.brow_thick * (0.55 - 0.2 * np.clip(sb, 0.0, 1.0)),
                   (np.abs(sb - 0.5) - 0.5) * (u_out - u_in))
    cv.paint(w, d, hair * 0.8, 0.95)

    # mouth: lips, cavity, teeth, the closed-mouth line, the smirk dimple
    w = cv.window(ident.mouth_y + 0.09, mw_max + 0.08, 0.26)
    uf, vf = cv.uf[w], cv.vf[w]
    auf = np.abs(uf)
    sm = uf / mw
    q = np.clip(1.0 - sm * sm, 0.0, 1.0)
    g = np.sqrt(q)
    corner = np.where(uf * side > 0, dy_smirk, dy_both)
    mid = my + corner * sm * sm
    opening = (0.03 * au["AU25"] + 0.2 * au["AU26"]) * (1.0 - 0.7 * au["AU24"])
    yu = mid - opening * 0.3 * q - 0.05 * au["AU10"] * g
    yl = mid + opening * q
    th = ident.lip_thick * (1.0 - 0.65 * au["AU24"]) * (1.0 - 0.3 * au["AU20"])
    cv.paint(w, np.maximum(auf - mw, np.maximum(yu - th * g - vf, vf - yl - 1.2 * th * g)), ident.lip)
    cav_a = cv.alpha(np.maximum(auf - mw * 0.96, np.maximum(yu - vf, vf - yl))) * cv.face_in[w]
    sub = cv.img[(slice(None),) + w]
    _paint(sub, cav_a, (0.25, 0.06, 0.08))
    _paint(sub, cv.alpha(np.maximum(auf - mw * 0.75, vf - np.minimum(yl, yu + 0.045))) * cav_a, (0.92, 0.9, 0.84))
    cv.paint(w, np.maximum(np.abs(vf - mid) - 0.011, auf - mw), (0.2, 0.05, 0.06), 0.8)
    if float(au["AU14"].max()) > 0.02:
        d = np.sqrt((uf - side * (mw + 0.03)) ** 2 + (vf - my - dy_smirk) ** 2) - 0.015
        cv.paint(w, d, dark, 0.6 * au["AU14"])

    # hair fringe over the forehead
    w = cv.window((ident.hairline - ident.face_h) / 2, ident.face_w + 0.05, (ident.face_h + ident.hairline) / 2 + 0.1)
    cv.paint(w, np.maximum(d_face[w], cv.vf[w] - (ident.hairline + 0.035 * np.cos(cv.uf[w] * 14.0))), hair,
             inside_face=False)

    x, y = _grid(size)
    img = cv.img
    if params.occlusion is not None and float(col["occ_on"].max()) > 0:
        _occlude(cv, params.occlusion, x, y, col)

    angle, strength, brightness = params.light
    light = brightness * (1.0 + strength * (np.cos(angle) * x + np.sin(angle) * y))  # [1, S, S]
    img *= light[None] * (np.asarray(params.cast, np.float32) * 255.0)[:, None, None, None]
    if params.blur > 0:
        img = _camera_blur(img, params.blur * size / 64.0)
    bank = _noise_bank(size)
    amount = np.float32(params.noise * 255.0)
    for j, t in enumerate(idx):
        h = _mix64(params.seed, params.index, int(t))
        img[:, j] += np.roll(bank[h % len(bank)], ((h >> 8) % size, (h >> 20) % size), axis=(1, 2)) * amount
    np.clip(img, 0.0, 255.0, out=img)
    img += 0.5
    return np.ascontiguousarray(img.astype(np.uint8).transpose(1, 2, 3, 0))


def _camera_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of planar frames ``[3, T, S, S]`` (reflected borders), two 1-D passes."""
    size = img.shape[-1]
    r = max(1, min(math.ceil(3.0 * sigma), size - 1))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(img, pad, mode="reflect")
        img = sum(w * padded.take(np.arange(k, k + size), axis=axis) for k, w in enumerate(taps))
    return img


def _occlude(cv: _Canvas, o: Mapping[str, Any], x: np.ndarray, y: np.ndarray,
             col: Mapping[str, np.ndarray]) -> None:
    on = col["occ_on"]
    px, py = x - col["occ_x"], y - col["occ_y"]
    c, s = math.cos(o["angle"]), math.sin(o["angle"])
    a = c * px + s * py
    b = -s * px + c * py
    if o["kind"] == "bar":
        length, thick = o["size"]
        d = np.maximum(np.abs(a) - length, np.abs(b) - thick)
    else:
        rx, ry = o["size"]
        # a palm and four fingers pointing along -b
        d = _ellipse_d(a, b, rx, ry)
        for f in range(4):
            fx = (f - 1.5) * rx * 0.5
            d = np.minimum(d, _ellipse_d(a - fx, b + ry + 0.12 - 0.02 * abs(f - 1.5), rx * 0.2, 0.16))
        _paint(cv.img, cv.alpha(d) * on, o["color"])
        d = np.abs(d) - 0.012  # outline, so a hand over skin stays visible
        _paint(cv.img, cv.alpha(d) * on, np.asarray(o["color"]) * 0.55)
        return
    _paint(cv.img, cv.alpha(d) * on, o["color"])


@dataclass(frozen=True)
class SyntheticReader:
    """Frame reader for synthetic clips; picklable, so DataLoader workers can use it."""

    image_size: int = 64

    def __call__(self, record: ClipRecord, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = [int(i) for i in idx if not 0 <= i < record.n_frames]
        if bad:
            raise ValueError(f"clip {record.clip_id}: frame indices {bad[:5]} outside "
                             f"0..{record.n_frames - 1}")
        return render_frames(clip_params(record), idx, self.image_size)


# --------------------------------------------------------------------------------------
# Dataset


def _class_counts(num_classes: int, num_clips: int, num_folds: int) -> list[int]:
    ref = np.array(DFEW_FOLD1_COUNTS if num_classes == 7 else MAFW_FOLD1_COUNTS, dtype=np.float64)
    per_fold_min = min(2, num_clips // (num_folds * num_classes))
    if per_fold_min < 1:
        raise ValueError(f"{num_clips} clips cannot give each of {num_classes} classes a clip in "
                         f"each of {num_folds} test folds; use at least {num_folds * num_classes}")
    floor = per_fold_min * num_folds
    target = ref / ref.sum() * num_clips
    counts = np.maximum(np.round(target).astype(int), floor)
    while counts.sum() != num_clips:
        excess = counts - target
        if counts.sum() > num_clips:
            movable = np.where(counts > floor, excess, -np.inf)
            counts[int(np.argmax(movable))] -= 1
        else:
            counts[int(np.argmin(excess))] += 1
    return [int(c) for c in counts]


def _clip_length(seed: int, index: int, domain: Domain = DOMAINS["synthetic"]) -> int:
    r = _rng(seed, _STREAM_LENGTH + domain.stream, index)
    if r.uniform() < 0.12:
        return int(r.integers(10, 16))
    return int(r.integers(16, 61))


def make_synthetic_dataset(num_classes: int = 7, num_clips: int = 400, num_folds: int = 5,
                           image_size: int = 64, seed: int = 0, domain: str = "synthetic") -> DFERDataset:
    """Build the synthetic benchmark: ``num_clips`` clips in ``num_folds`` folds.

    Classes follow DFEW's order (7) or MAFW's (11) with the real sets' imbalance, every
    class keeping at least one (usually two) clips in each test fold. Folds are
    subject-independent: fold ``k`` (1-based) tests on identity group ``k`` and trains
    on the others. Only the records are built here; pixels are rendered on demand by
    the dataset's reader. ``domain`` (a key of :data:`DOMAINS`) picks the nuisances; the
    dataset is named after it, with ``-11`` for 11 classes.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown synthetic domain {domain!r}; valid: {', '.join(DOMAINS)}")
    d = DOMAINS[domain]
    if num_classes not in (7, 11):
        raise ValueError(f"num_classes must be 7 (DFEW order) or 11 (MAFW order), got {num_classes}")
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    counts = _class_counts(num_classes, num_clips, num_folds)
    labels = np.repeat(np.arange(num_classes), counts)
    folds = np.arange(num_clips) % num_folds  # dealing class-sorted labels spreads each class

    r = _rng(seed, _STREAM_LAYOUT + d.stream, 0)
    clip_index = r.permutation(num_clips)
    subject_of = np.empty(num_clips, dtype=np.int64)
    next_subject = 0
    for f in range(num_folds):
        members = np.flatnonzero(folds == f)
        n_subj = max(2, len(members) // 5) if len(members) >= 2 else 1
        subject_of[members] = next_subject + r.permutation(np.arange(len(members)) % n_subj)
        next_subject += n_subj
    relabel = r.permutation(next_subject)
    subject_of = relabel[subject_of]

    records: list[tuple[int, ClipRecord]] = []
    for j in range(num_clips):
        ci, subj = int(clip_index[j]), int(subject_of[j])
        rec = ClipRecord(clip_id=f"s{subj:04d}_c{ci:04d}", source=f"{domain}:{seed}:{ci}",
                         n_frames=_clip_length(seed, ci, d), label=int(labels[j]), subject=f"s{subj:04d}")
        records.append((int(folds[j]), rec))
    records.sort(key=lambda fr: _parse_source(fr[1].source)[1])
    splits = {
        k + 1: {"train": [rec for f, rec in records if f != k], "test": [rec for f, rec in records if f == k]}
        for k in range(num_folds)
    }
    return DFERDataset(
        name=domain if num_classes == 7 else f"{domain}-11",
        classes=list(DFEW_CLASSES if num_classes == 7 else MAFW_CLASSES),
        splits=splits, reader=SyntheticReader(image_size), augmentation="none",
    )


def _all_records(dataset: DFERDataset) -> list[ClipRecord]:
    seen: dict[str, ClipRecord] = {}
    for fold in dataset.folds:
        for split in ("train", "test"):
            for rec in dataset.split(fold, split):
                seen.setdefault(rec.clip_id, rec)
    return sorted(seen.values(), key=lambda rec: rec.clip_id)


def write_synthetic_tree(dataset: DFERDataset, root: Path, quality: int = 95,
                         name: str | None = None) -> Path:
    """Write the dataset as JPEG frame folders plus DFER-CLIP annotation files.

    Frames go to ``root/frames/<clip_id>/00001.jpg ...``; each fold's splits go to
    ``root/annotations/<NAME>_set_<k>_<train|test>.txt``, one ``<absolute frame dir>
    <num_frames> <label>`` line per clip and no newline after the last line, like the
    released files. ``NAME`` defaults to ``DFEW`` for 7 classes and ``MAFW`` for 11,
    so loaders of the real layouts can read the tree. Returns ``root``.
    """
    from PIL import Image

    root = Path(root).resolve()
    name = name or ("DFEW" if len(dataset.classes) == 7 else "MAFW")
    frames_root = root / "frames"
    ann_root = root / "annotations"
    ann_root.mkdir(parents=True, exist_ok=True)
    for rec in _all_records(dataset):
        clip_dir = frames_root / rec.clip_id
        clip_dir.mkdir(parents=True, exist_ok=True)
        frames = dataset.reader(rec, range(rec.n_frames))
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(clip_dir / f"{i + 1:05d}.jpg", quality=quality)
    for fold in dataset.folds:
        for split in ("train", "test"):
            lines = [f"{frames_root / rec.clip_id} {rec.n_frames} {rec.label}"
                     for rec in dataset.split(fold, split)]
            (ann_root / f"{name}_set_{fold}_{split}.txt").write_text("\n".join(lines))
    return root
