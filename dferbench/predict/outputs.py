"""What ``predict`` writes: per-video timelines (JSON, CSV), a plot, an annotated MP4,
and a summary of the whole call.

Per input, in ``<output>/<video name>/``:

* ``timeline.json`` -- the video (frames, fps, size), the settings, every track with
  its windows (start/end seconds, frames, the probability of every class, the top
  class) and its summary;
* ``timeline.csv`` -- one row per window: ``track, main, window, start_s, end_s,
  first_frame, last_frame, top, <class>...`` (probabilities, one column per class);
* ``timeline.png`` -- class probabilities over time, the top class as a coloured strip,
  face crops of a few windows (one plot per track: ``timeline-track<K>.png`` for the
  others);
* ``annotated.mp4`` (on request) -- every frame with the face crop's square and the
  label of the window centred nearest to it.

``summary.csv`` / ``summary.json`` in ``<output>`` list every input with its top class
or its error.
"""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dferbench.files import replacing
from dferbench.run.results import write_atomic

if TYPE_CHECKING:
    from dferbench.predict.pipeline import TrackPrediction, VideoResult


def class_colours(classes: Sequence[str]) -> list[tuple[float, float, float]]:
    """One distinct RGB colour (0..1) per class, the same in every plot and video."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    return [tuple(float(c) for c in cmap(k % cmap.N)[:3]) for k in range(len(classes))]


def unique_name(path: Path, used: set[str]) -> str:
    """A folder name for ``path``'s outputs, not yet in ``used`` (which it joins)."""
    base = path.stem if path.is_file() or path.suffix else path.name
    base = base or "video"
    name, k = base, 2
    while name in used:
        name, k = f"{base}-{k}", k + 1
    used.add(name)
    return name


def write_video_outputs(result: VideoResult, folder: Path, *, plot: bool = True, make_video: bool = False,
                        margin: float) -> dict[str, str]:
    """Write the files of one predicted video into ``folder``; returns ``{kind: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": str(folder / "timeline.json"), "csv": str(folder / "timeline.csv")}
    if plot:
        for track in result.tracks:
            name = "timeline.png" if track is result.tracks[0] else f"timeline-track{track.track_id}.png"
            plot_timeline(result, track, folder / name)
            files.setdefault("png", str(folder / name))
    if make_video:
        write_annotated_video(result, folder / "annotated.mp4", margin=margin)
        files["mp4"] = str(folder / "annotated.mp4")
    write_csv(result, Path(files["csv"]))
    result.files = files
    write_json(result, Path(files["json"]))
    return files


def write_json(result: VideoResult, path: Path) -> None:
    write_atomic(path, json.dumps(result.to_dict(), indent=1) + "\n")


def write_csv(result: VideoResult, path: Path) -> None:
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["track", "main", "window", "start_s", "end_s", "first_frame", "last_frame", "top",
                     *result.classes])
    for track in result.tracks:
        for k, w in enumerate(track.windows):
            writer.writerow([track.track_id, int(track.main), k, f"{w.start_s:.3f}", f"{w.end_s:.3f}", w.first_frame,
                             w.last_frame, w.top, *[f"{p:.6f}" for p in w.probs]])
    write_atomic(path, out.getvalue())


def _top_segments(track: TrackPrediction) -> list[tuple[float, float, int]]:
    """The strip: ``(start, end, class index)``; each instant takes the top class of the
    window whose centre is nearest, from the track's start to its end."""
    centres = np.array([(w.start_s + w.end_s) / 2 for w in track.windows])
    tops = [int(np.argmax(w.probs)) for w in track.windows]
    cuts = np.concatenate([[track.start_s], (centres[1:] + centres[:-1]) / 2, [track.end_s]])
    return [(float(cuts[k]), float(cuts[k + 1]), tops[k]) for k in range(len(tops))]


def plot_timeline(result: VideoResult, track: TrackPrediction, path: Path) -> None:
    """The PNG timeline of one track (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    classes = result.classes
    colours = class_colours(classes)
    thumbs = track.thumbnails
    fig = plt.figure(figsize=(11, 6.8 if thumbs else 4.6), dpi=110)
    rows = 3 if thumbs else 2
    grid = fig.add_gridspec(rows, max(len(thumbs), 1), height_ratios=[3.2, 0.45, 1.6][:rows], hspace=0.45, left=0.07, right=0.8, top=0.9, bottom=0.06)
    ax = fig.add_subplot(grid[0, :])
    strip = fig.add_subplot(grid[1, :], sharex=ax)
    centres = [(w.start_s + w.end_s) / 2 for w in track.windows]
    probs = np.array([w.probs for w in track.windows])  # [W, C]
    for k, name in enumerate(classes):
        ax.plot(centres, probs[:, k], color=colours[k], lw=1.8, marker="o" if len(centres) < 40 else None, ms=3,
                label=name)
    for t, _, _ in thumbs:
        ax.axvline(t, color="0.6", lw=0.8, ls=":")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, result.duration_s or track.end_s)
    ax.set_ylabel("probability")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="class")
    ax.set_xlabel("window centre (s)")
    summary = track.summary
    face = "main face" if track.main else "face"
    ax.set_title(f"{result.name}: {face} (track {track.track_id}), detector {result.detector}, "
                 f"{_window_text(result)}\nsummary: {summary['top']} (mean p = {summary['top_prob']:.2f} over "
                 f"{summary['windows']} windows)", fontsize=10, loc="left")

    segments = _top_segments(track)
    for start, end, k in segments:
        strip.broken_barh([(start, end - start)], (0, 1), facecolors=colours[k])
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.set_ylabel("top", rotation=0, ha="right", va="center")
    strip.set_xlabel("time (s)")
    shown = sorted({k for _, _, k in segments})
    strip.legend(handles=[Patch(color=colours[k], label=classes[k]) for k in shown], loc="upper left",
                 bbox_to_anchor=(1.01, 1.4), frameon=False, fontsize=8, title="top class", title_fontsize=8)

    for j, (t, top, crop) in enumerate(thumbs):
        tax = fig.add_subplot(grid[2, j])
        tax.imshow(crop)
        tax.set_xticks([])
        tax.set_yticks([])
        for spine in tax.spines.values():
            spine.set_edgecolor(colours[classes.index(top)])
            spine.set_linewidth(3)
        tax.set_title(f"{t:.1f} s: {top}", fontsize=8)
        if j == 0:
            tax.set_ylabel("model input", fontsize=8)
    fig.savefig(path)
    plt.close(fig)


def _window_text(result: VideoResult) -> str:
    s = result.settings
    if s.get("window_s") is None:
        return "one window over the track"
    return f"windows {s['window_s']:g} s every {s['stride_s']:g} s"


def write_annotated_video(result: VideoResult, path: Path, *, margin: float) -> None:
    """Every frame of the input with each track's crop square and the label (top class
    and its probability) of that track's window centred nearest to the frame."""
    import av
    import cv2

    from dferbench.predict.tracking import crop_square_box
    from dferbench.predict.video import open_source

    source = open_source(result.path, frame_fps=result.fps or 25.0)
    colours = [tuple(int(255 * c) for c in rgb) for rgb in class_colours(result.classes)]
    width, height = source.width - source.width % 2, source.height - source.height % 2  # yuv420p needs even sizes
    per_track = []
    for track in result.tracks:
        centres = np.array([(w.start_s + w.end_s) / 2 for w in track.windows])
        per_track.append((track, centres))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with replacing(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(source.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        scale = max(width, height) / 640
        for i, frame in enumerate(source.iter_frames()):
            if i >= source.n_frames:
                break
            image = np.ascontiguousarray(frame[:height, :width])
            t = source.timestamps[i]
            for track, centres in per_track:
                if not track.first_frame <= i <= track.last_frame:
                    continue
                w = track.windows[int(np.abs(centres - t).argmin())]
                k = result.classes.index(w.top)
                label = f"{w.top} {max(w.probs):.2f}"
                if result.whole_frame:
                    x0, y0, side = 0, 0, 0
                else:
                    x0, y0, side = crop_square_box(track.boxes[i - track.first_frame], source.width, source.height,
                                                   margin)
                    cv2.rectangle(image, (x0, y0), (x0 + side, y0 + side), colours[k], max(1, int(2 * scale)))
                font = 0.5 * max(scale, 0.6)
                (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
                ty = max(y0, th + base + 2)
                cv2.rectangle(image, (x0, ty - th - base - 2), (x0 + tw + 4, ty), colours[k], -1)
                cv2.putText(image, label, (x0 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                            cv2.LINE_AA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def result_line(result: VideoResult) -> str:
    """One line per input for the console."""
    if not result.ok:
        return f"error: {result.error}"
    s = result.summary
    where = f" -> {Path(result.files['json']).parent}" if result.files else ""
    extra = f", {len(result.tracks)} faces" if len(result.tracks) > 1 else ""
    return f"{result.name}: {s['windows']} windows over {result.duration_s:.1f} s{extra}; " \
           f"top {s['top']} (mean p = {s['top_prob']:.2f}){where}"


def summary_rows(results: Sequence[VideoResult]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        s = r.summary
        rows.append({
            "video": r.name,
            "status": "ok" if r.ok else "error",
            "duration_s": round(r.duration_s, 2) if r.duration_s is not None else None,
            "faces": len(r.tracks),
            "windows": s.get("windows", 0),
            "top": s.get("top", ""),
            "mean_p": round(s["top_prob"], 3) if s else None,
            "error": r.error or "",
        })
    return rows


def summary_table(results: Sequence[VideoResult]) -> str:
    """The console table of the call: one row per input."""
    from tabulate import tabulate

    rows = summary_rows(results)
    failed = sum(r["status"] == "error" for r in rows)
    if not failed:
        rows = [{k: v for k, v in r.items() if k != "error"} for r in rows]
    table = tabulate(rows, headers="keys", tablefmt="simple")
    return f"{table}\n{len(rows) - failed} of {len(rows)} inputs predicted" + (f", {failed} failed" if failed else "")


def write_summary(results: Sequence[VideoResult], root: Path) -> None:
    import io

    root.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["video"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(root / "summary.csv", out.getvalue())
    write_atomic(root / "summary.json", json.dumps(rows, indent=1) + "\n")
