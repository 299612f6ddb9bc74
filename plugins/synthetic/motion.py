"""How a synthetic clip moves: the per-frame state (expression envelope, head pose, blinks,
speech) of a clip's parameters at frame ``t``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dferbench_plugins.synthetic.faces import AU_KEYS, ClipParams


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
