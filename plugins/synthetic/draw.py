"""Drawing a synthetic clip's frames with numpy: the face, lighting, noise, occluders."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from dferbench_plugins.synthetic.faces import _STREAM_NOISE, AU_KEYS, ClipParams, _rng
from dferbench_plugins.synthetic.motion import _tracks


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
