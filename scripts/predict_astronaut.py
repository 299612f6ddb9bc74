"""Make the README's predict example through the real command line: an 8 s pan-and-zoom
video of scikit-image's astronaut portrait, then ``dferbench predict`` on it.

    python scripts/predict_astronaut.py CHECKPOINT [--output DIR] [--image PATH]

CHECKPOINT is any checkpoint ``dferbench predict`` reads; the README's comes from
``dferbench run --model dferclip --dataset synthetic --folds 1 --set model.save_checkpoint=true -o runs``.
The plot is copied to ``--image`` (default: docs/images/predict-astronaut.png).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from dferbench.predict.demo import astronaut_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--output", type=Path, default=Path("runs/predict"))
    parser.add_argument("--image", type=Path, default=Path("docs/images/predict-astronaut.png"))
    args = parser.parse_args()

    args.output.mkdir(parents=True, exist_ok=True)
    video = args.output / "astronaut.mp4"
    astronaut_video(video, n_frames=192, size=256, fps=24.0)
    command = ["dferbench", "predict", str(video), "--checkpoint", str(args.checkpoint), "--output", str(args.output),
               "--video"]
    print("$ " + shlex.join(command), flush=True)
    subprocess.run([sys.executable, "-m", "dferbench", *command[1:]], check=True)
    args.image.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.output / "astronaut" / "timeline.png", args.image)
    print(f"plot copied to {args.image}")


if __name__ == "__main__":
    main()
