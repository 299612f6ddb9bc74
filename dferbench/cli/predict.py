"""``dferbench predict``: a trained model's expressions over time in your own videos."""

from __future__ import annotations

import sys

import click


@click.command(name="predict")
@click.argument("inputs", nargs=-1, required=True, metavar="VIDEO|FRAME_DIR|FOLDER...")
@click.option("--checkpoint", "-c", required=True, type=click.Path(dir_okay=False),
              help="A dferbench .checkpoint.safetensors (its .json sidecar next to it), or a file a model reads "
              "itself, such as the DFER-CLIP authors' .pth.")
@click.option("--output", "-o", default="runs/predict", show_default=True, type=click.Path(file_okay=False),
              help="Folder for <video>/timeline.{json,csv,png} and summary.{csv,json}.")
@click.option("--dataset", "-d", help="Dataset whose classes the model scores: needed for files that do not "
              "record them (the authors' .pth: dfew, ferv39k or mafw); checked against a dferbench checkpoint's.")
@click.option("--model", "-m", help="Model that reads a file which is not a dferbench checkpoint (default: the one "
              "registered model that reads such files).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="A setting of the dataset's preset for files that do not record it, e.g. "
              "--set model.clip_model=NAME for a CLIP whose head count the weights cannot show (repeatable).")
@click.option("--face-detector", default="haar", show_default=True,
              help="haar, mtcnn (facenet-pytorch, installed apart), or none when the frames are face crops already.")
@click.option("--face", type=click.Choice(["main", "all"]), default="main", show_default=True,
              help="Follow the main face (largest and most persistent) or every face.")
@click.option("--window", default=2.0, show_default=True, help="Window length in seconds; 0: the whole face track.")
@click.option("--stride", default=0.5, show_default=True, help="Seconds between window starts.")
@click.option("--video", is_flag=True, help="Also write annotated.mp4: the face box and label on every frame.")
@click.option("--fps", default=25.0, show_default=True, help="Frame rate of frame folders (videos carry their own).")
@click.option("--detect-fps", default=5.0, show_default=True, help="Frames searched for faces per second of video.")
@click.option("--margin", default=0.25, show_default=True,
              help="The square face crop's side is (1 + margin) x the detected face's.")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--no-plot", is_flag=True, help="Skip the PNG timelines.")
def predict(inputs, checkpoint, output, dataset, model, overrides, face_detector, face, window, stride, video, fps,
            detect_fps, margin, device, no_plot) -> None:
    """Predict the expressions over time in videos, frame folders or folders of them.

    \b
    Finds the faces, follows the main one, slides windows over it, samples each window as
    evaluation samples a test clip and writes per input a JSON and a CSV timeline (one row
    per window, a probability per class), a PNG plot and, with --video, an annotated MP4;
    a summary table covers every input. An input that fails (missing, damaged, no face,
    shorter than a window) is one line in the table; the others still run. Exit status 1
    when an input failed, 2 when the checkpoint or a setting is wrong.
    Examples:
      dferbench predict interview.mp4 -c runs/synthetic/dferclip/fold1-seed1.checkpoint.safetensors
      dferbench predict clips/ -c DFEW_set_1_model_best.pth --dataset dfew --video -o predictions
      dferbench predict frames/ -c model.checkpoint.safetensors --face-detector none --window 0 --fps 30
    """
    from dferbench import api

    results = api.predict(list(inputs), checkpoint, output=output, dataset=dataset, model=model, overrides=overrides,
                          face_detector=face_detector, face=face, window=window, stride=stride, video=video, fps=fps,
                          detect_fps=detect_fps, margin=margin, device=device, plot=not no_plot, echo=click.echo)
    if any(not r.ok for r in results):
        sys.exit(1)
