"""Compare dferbench's DFER-CLIP with the authors' own code, numerically.

Needs a local checkout of https://github.com/zengqunzhao/DFER-CLIP (nothing is
downloaded) and ``einops``, which their temporal model imports. Their ``clip`` package
imports ``pkg_resources``; where setuptools no longer provides it, a two-line stand-in is
put on the path for this process only.

    python scripts/compare_with_authors.py --authors-repo ~/src/DFER-CLIP

What it checks, with one randomly initialised ViT-B/32 (``ViT-B-32-quickgelu``) shared by
both code bases:

1. model: the authors' ``GenerateModel`` (their prompt learner, text encoder, temporal
   transformer, their CLIP built by their ``build_model``) is saved as a checkpoint in
   their format and loaded by dferbench; both score the same video -> logits.
2. training: two SGD steps each, the authors' optimiser (as in their ``main.py``) against
   ``dferbench.models.dferclip.build_optimizer``; losses, then every parameter.
3. test-time loading: their ``test_data_loader`` against dferbench's ``cpu`` and
   ``reference`` pipelines on the same JPEG frame folders (sampled frames, pixels).
4. training augmentation: their DFEW / FERV39k / MAFW transform chains run on real PIL
   frames with their own random draws; the draws are recorded, turned into dferbench's
   per-clip parameters and applied by the ``cpu`` and ``gpu`` pipelines' code -> pixels.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import torch


def _import_authors(repo: Path, scratch: Path) -> types.SimpleNamespace:
    if importlib.util.find_spec("pkg_resources") is None:
        shim = scratch / "shim" / "pkg_resources"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "__init__.py").write_text("import packaging\nimport packaging.version\n")
        sys.path.insert(0, str(shim.parent))
    if importlib.util.find_spec("einops") is None:
        sys.exit("the authors' temporal model imports einops: pip install einops")
    sys.path[:0] = [str(repo / "models"), str(repo)]
    from clip import model as clip_model  # noqa: E402  (theirs)
    from dataloader.video_dataloader import test_data_loader  # noqa: E402
    from Generate_Model import GenerateModel  # noqa: E402
    import Text  # noqa: E402

    from dataloader import video_dataloader, video_transform  # noqa: E402

    return types.SimpleNamespace(build_clip=clip_model.build_model, GenerateModel=GenerateModel, Text=Text,
                                 test_data_loader=test_data_loader, train_data_loader=video_dataloader.train_data_loader,
                                 transforms=video_transform)


def compare_model(authors: types.SimpleNamespace, scratch: Path, steps: int = 2) -> None:
    import open_clip

    from dferbench.models.checkpoints import convert_authors_state_dict, load_authors_checkpoint
    from dferbench.models.dferclip import build_optimizer

    torch.manual_seed(0)
    backbone = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None, precision="fp32")
    their_clip = authors.build_clip(copy.deepcopy(backbone.state_dict())).float()
    texts = list(authors.Text.class_descriptor_7)
    settings = types.SimpleNamespace(contexts_number=8, class_token_position="end", class_specific_contexts="True",
                                     load_and_tune_prompt_learner="False", temporal_layers=1)
    theirs = authors.GenerateModel(input_text=texts, clip_model=their_clip, args=settings)
    for name, p in theirs.named_parameters():  # what their main.py trains
        p.requires_grad = any(part in name for part in ("image_encoder", "temporal_net", "prompt_learner"))

    path = scratch / "authors_model.pth"  # what their script saves, DataParallel prefix included
    torch.save({"epoch": 1, "best_acc": torch.tensor(0.0),
                "state_dict": {"module." + k: v for k, v in theirs.state_dict().items()}}, path)
    ours = load_authors_checkpoint(path, class_texts=texts).model
    print(f"tokenised prompts identical: {torch.equal(theirs.tokenized_prompts, ours.prompt_learner.tokenized_prompts)}")

    video = torch.rand(2, 16, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        a, b = theirs(video), ours(video)
    print(f"logits: max |diff| {(a - b).abs().max().item():.3g} (largest logit {a.abs().max().item():.3g})")

    theirs.train()
    ours.train()
    their_opt = torch.optim.SGD([{"params": theirs.temporal_net.parameters(), "lr": 1e-2},
                                 {"params": theirs.image_encoder.parameters(), "lr": 1e-5},
                                 {"params": theirs.prompt_learner.parameters(), "lr": 1e-3}],
                                lr=1e-2, momentum=0.9, weight_decay=1e-4)
    our_opt, _ = build_optimizer(ours)
    sizes = [[sum(p.numel() for p in g["params"]) for g in o.param_groups] for o in (their_opt, our_opt)]
    print(f"optimiser groups (parameters): authors {sizes[0]}, dferbench {sizes[1]}")
    labels = torch.tensor([3, 5])
    for step in range(steps):
        losses = []
        for net, opt in ((theirs, their_opt), (ours, our_opt)):
            loss = torch.nn.functional.cross_entropy(net(video), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(f"step {step + 1}: loss authors {losses[0]:.6f}, dferbench {losses[1]:.6f}")
    converted, _ = convert_authors_state_dict({"module." + k: v for k, v in theirs.state_dict().items()})
    mine = ours.state_dict()
    diff, name = max(((converted[k] - mine[k]).abs().max().item(), k) for k in converted
                     if k in mine and converted[k].is_floating_point())
    print(f"after {steps} steps: largest parameter |diff| {diff:.3g} ({name})")


def compare_test_loader(authors: types.SimpleNamespace, scratch: Path) -> None:
    from dferbench.data.fake_trees import write_frames
    from dferbench.data.loader import ClipSet
    from dferbench.data.readers import FrameFolderReader
    from dferbench.data.records import ClipRecord

    specs = [(5, 224), (16, 224), (17, 224), (40, 224), (144, 224), (33, 180), (70, 256)]  # frames, pixels
    records, lines = [], []
    for c, (n, size) in enumerate(specs):
        folder = scratch / "frames" / f"{c + 1:05d}"
        write_frames(folder, n, size=size, seed=c)
        records.append(ClipRecord(folder.name, str(folder), n, c % 7))
        lines.append(f"{folder} {n} {c % 7}")
    listing = scratch / "frames" / "test.txt"
    listing.write_text("\n".join(lines) + "\n")
    theirs = authors.test_data_loader(str(listing), 16, 1, 224)
    for pipeline in ("cpu", "reference"):
        clips = ClipSet("compare", records, FrameFolderReader(), num_frames=16, image_size=224, normalize="none",
                        augmentation="none", pipeline=pipeline)
        ours = [video[0] for video, *_ in clips.batches(train=False, batch_size=1).epoch(0)]
        for c, (n, size) in enumerate(specs):
            d = (theirs[c][0] - ours[c]).abs() * 255
            print(f"test clip, {n:3d} frames of {size} px, pipeline {pipeline:9s}: "
                  f"max |diff| {d.max().item():.2f} grey levels, mean {d.mean().item():.4f}")


class _RecordedRandom:
    """Stands in for the ``random`` module of the authors' transforms: same draws as a
    seeded ``random.Random``, each one logged as ``(method, value)``."""

    def __init__(self, seed: int):
        import random

        self._random, self.log = random.Random(seed), []

    def __getattr__(self, name: str):
        method = getattr(self._random, name)

        def logged(*args):
            value = method(*args)
            self.log.append((name, value))
            return value

        return logged


def _params_from_draws(log: list, steps: tuple[str, ...], height: int, width: int):
    """dferbench's :class:`ClipParams` from the draws the authors' transforms made, in their
    order; None when their crop fell back (ten failed attempts, not compared here)."""
    import math

    from dferbench.data.transforms import ClipParams

    draws = iter([entry for entry in log if entry[0] != "shuffle"])  # ColorJitter shuffles a 1-item list
    brightness = angle = crop = None
    flip = False
    for step in steps:
        if step == "brightness":
            brightness = next(draws)[1]
        elif step == "rotate":
            angle = next(draws)[1]
        elif step == "crop":
            for _ in range(10):
                area = next(draws)[1] * height * width
                ratio = next(draws)[1]
                w, h = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
                if next(draws)[1] < 0.5:
                    w, h = h, w
                if w <= width and h <= height:
                    left, top = next(draws)[1], next(draws)[1]
                    crop = (top, left, h, w)
                    break
            else:
                return None
        elif step == "flip":
            flip = next(draws)[1] < 0.5
    return ClipParams(brightness=brightness, angle=angle, crop=crop, flip=flip)


def compare_train_augmentation(authors: types.SimpleNamespace, scratch: Path, clips: int = 40) -> None:
    import numpy as np
    from PIL import Image

    from dferbench.data import gpu
    from dferbench.data.fake_trees import write_frames
    from dferbench.data.transforms import build_clip_transform

    folder = scratch / "train-frames"
    paths = write_frames(folder, 4, size=224, seed=3)
    for dataset, augmentation in (("DFEW", "dfew"), ("FERV39K", "ferv39k"), ("MAFW", "mafw")):
        chain = authors.train_data_loader(str(scratch / "frames" / "test.txt"), 16, 1, 224,
                                          types.SimpleNamespace(dataset=dataset)).transform
        ours = build_clip_transform(augmentation, 224, train=True)
        worst, total = {"cpu": 0.0, "gpu": 0.0}, {"cpu": 0.0, "gpu": 0.0}
        compared = 0
        for seed in range(clips):
            recorder = _RecordedRandom(seed)
            authors.transforms.random = recorder
            images = [Image.open(p).convert("RGB") for p in paths]
            theirs = chain(images).reshape(-1, 3, 224, 224)
            params = _params_from_draws(recorder.log, ours.steps, 224, 224)
            if params is None:
                continue
            frames = np.stack([np.asarray(im) for im in images])
            mine = {"cpu": ours.apply(frames, params),
                    "gpu": gpu.apply_params(torch.from_numpy(frames).permute(0, 3, 1, 2), params, ours)}
            for name, video in mine.items():
                diff = (theirs - video).abs() * 255
                worst[name] = max(worst[name], diff.max().item())
                total[name] += diff.mean().item()
            compared += 1
        print(f"training augmentation {augmentation} ({compared} clips, their draws): "
              + ", ".join(f"{name} pipeline max |diff| {worst[name]:.2f}, mean {total[name] / compared:.4f}"
                          for name in worst) + " grey levels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors-repo", type=Path, required=True, help="checkout of zengqunzhao/DFER-CLIP")
    parser.add_argument("--skip-model", action="store_true", help="only the loader comparison (fast)")
    args = parser.parse_args()
    if not (args.authors_repo / "models" / "Generate_Model.py").is_file():
        sys.exit(f"{args.authors_repo} is not a DFER-CLIP checkout (no models/Generate_Model.py)")
    with tempfile.TemporaryDirectory() as tmp:
        authors = _import_authors(args.authors_repo.resolve(), Path(tmp))
        if not args.skip_model:
            compare_model(authors, Path(tmp))
        compare_test_loader(authors, Path(tmp))
        compare_train_augmentation(authors, Path(tmp))


if __name__ == "__main__":
    main()
