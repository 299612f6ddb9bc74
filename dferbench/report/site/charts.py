"""Pictures as markup: inline SVG line charts and heat-map cell colours, no JS library.

Everything returned is deterministic text (fixed float formatting), so a rebuilt site
is byte-identical.
"""

from __future__ import annotations

import math
from html import escape

# Okabe-Ito colours (readable by colour-blind readers), without the yellow that is too light on white.
PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#666666"]
DASHES = ["", "6 3", "2 3"]  # a second and third cycle through the palette are dashed

# Heat-map colour ramp: 0 -> white, 1 -> dark blue.
_LOW, _HIGH = (255, 255, 255), (8, 81, 156)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 x 10^k) covering ``[lo, hi]``."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    return [round(i * step, 10) for i in range(first, max(last, first + 1) + 1)]


def line_chart(title: str, y_label: str, series: list[tuple[str, list[tuple[float, float]]]],
               *, width: int = 560, height: int = 240) -> str:
    """A ``<figure>`` with an SVG line chart of ``series`` [(name, [(x, y), ...])], a legend
    and the numbers as a collapsible table; x is the epoch."""
    left, right, top, bottom = 56, 12, 12, 36
    xs = [x for _, points in series for x, _ in points]
    ys = [y for _, points in series for _, y in points]
    x_ticks = ticks(min(xs), max(xs), 6)
    x_ticks = [t for t in x_ticks if t == int(t)] or x_ticks  # epochs are whole numbers
    y_ticks = ticks(min(ys), max(ys), 5)
    x0, x1 = x_ticks[0], x_ticks[-1]
    y0, y1 = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" class="chart">']
    for t in y_ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    for t in x_ticks:
        parts.append(f'<text class="tick" x="{px(t):.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">{_num(t)}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append(f'<text class="label" x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">epoch</text>')
    parts.append(f'<text class="label" transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    legend = []
    for i, (name, points) in enumerate(series):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attr} points="{coords}">'
                     f'<title>{escape(name)}</title></polyline>')
        if len(points) == 1:
            parts.append(f'<circle cx="{px(points[0][0]):.1f}" cy="{py(points[0][1]):.1f}" r="3" fill="{colour}"/>')
        legend.append(f'<li><svg class="swatch" viewBox="0 0 24 8" aria-hidden="true"><line x1="0" x2="24" y1="4" '
                      f'y2="4" stroke="{colour}" stroke-width="3"{dash_attr}/></svg>{escape(name)}</li>')
    parts.append("</svg>")
    epochs = sorted({x for x in xs})
    values = [dict(points) for _, points in series]
    head = "".join(f'<th scope="col">{escape(name)}</th>' for name, _ in series)
    body = "".join(
        f'<tr><th scope="row">{_num(e)}</th>' + "".join(f"<td>{v[e]:.4g}</td>" if e in v else "<td>-</td>"
                                                       for v in values) + "</tr>"
        for e in epochs)
    return (f'<figure class="curve"><figcaption>{escape(title)}</figcaption>{"".join(parts)}'
            f'<ul class="legend">{"".join(legend)}</ul>'
            f'<details><summary>numbers</summary><div class="table-scroll"><table class="numbers">'
            f'<thead><tr><th scope="col">epoch</th>{head}</tr></thead><tbody>{body}</tbody></table></div></details>'
            f"</figure>")


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def heat_style(fraction: float) -> str:
    """Inline CSS for a heat-map cell: background for ``fraction`` in [0, 1] and the text
    colour (black or white) with the higher WCAG contrast against it."""
    f = min(max(fraction, 0.0), 1.0)
    rgb = tuple(round(lo + (hi - lo) * f) for lo, hi in zip(_LOW, _HIGH))
    lum = _luminance(rgb)  # type: ignore[arg-type]
    on_black, on_white = (lum + 0.05) / 0.05, 1.05 / (lum + 0.05)
    text = "#000000" if on_black >= on_white else "#ffffff"
    return f"background:#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x};color:{text}"
