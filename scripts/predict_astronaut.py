"""Make the README's predict example: a pan-and-zoom video of scikit-image's astronaut
portrait, run through a DFER-CLIP checkpoint written by dferbench, Haar face detector.

    python scripts/predict_astronaut.py CHECKPOINT.safetensors [--output DIR]

The checkpoint is a dferbench DFER-CLIP checkpoint (``--set model.save_checkpoint=true``
on a run); its sidecar gives the classes, frames, resolution and normalisation. Until
``dferbench predict`` reads checkpoints itself, this is the checkpoint -> scorer step.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from dferbench_plugins.dferclip.checkpoints import load_checkpoint
from dferbench.predict.demo import astronaut_video
from dferbench.predict.pipeline import predict_videos
from dferbench.predict.scorer import ModuleScorer
from dferbench_plugins.faces.haar import HaarDetector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--output", type=Path, default=Path("predictions"))
    parser.add_argument("--image", type=Path, default=Path("docs/images/predict-astronaut.png"))
    args = parser.parse_args()

    network, sidecar = load_checkpoint(args.checkpoint)
    data = sidecar["meta"]["config"]["data"]
    scorer = ModuleScorer(network, sidecar["meta"]["classes"], num_frames=data["num_frames"],
                          image_size=data["image_size"], normalize=data["normalize"])
    args.output.mkdir(parents=True, exist_ok=True)
    video = args.output / "astronaut.mp4"
    astronaut_video(video, n_frames=192, size=256, fps=24.0)  # 8 s
    [result] = predict_videos([video], scorer, HaarDetector(), output_dir=args.output, make_video=True)
    args.image.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.files["png"], args.image)
    print(f"plot copied to {args.image}")


if __name__ == "__main__":
    main()
