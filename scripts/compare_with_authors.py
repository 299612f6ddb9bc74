"""Compare dferbench's DFER-CLIP, CoOp and Co-CoOp with the authors' own code, numerically.

Needs local checkouts of https://github.com/zengqunzhao/DFER-CLIP and/or
https://github.com/KaiyangZhou/CoOp (nothing is downloaded). The DFER-CLIP temporal model
imports ``einops``; both bundle OpenAI's ``clip`` package, which imports
``pkg_resources``: where setuptools no longer provides it, a two-line stand-in is put on
the path for this process only. CoOp's trainers import Dassl; the few names they import
are stubbed, since only their model classes run here.

    python scripts/compare_with_authors.py --dfer-clip ~/src/DFER-CLIP --coop ~/src/CoOp

Both code bases build their CLIP with OpenAI's ``build_model`` from the state dict of one
randomly initialised ``ViT-B-32-quickgelu`` (which rounds it to fp16: dferbench's side
gets the same rounded weights).

DFER-CLIP:

1. model: the authors' ``GenerateModel`` (their prompt learner, text encoder, temporal
   transformer) is saved as a checkpoint in their format and loaded by dferbench; both
   score the same video -> logits.
2. training: two SGD steps each, the authors' optimiser (as in their ``main.py``) against
   ``dferbench_plugins.dferclip.network.build_optimizer``; losses, then every parameter.
3. test-time loading: their ``test_data_loader`` against dferbench's ``cpu`` and
   ``reference`` pipelines on the same JPEG frame folders (sampled frames, pixels).
4. training augmentation: their DFEW / FERV39k / MAFW transform chains run on real PIL
   frames with their own random draws; the draws are recorded, turned into dferbench's
   per-clip parameters and applied by the ``cpu`` and ``gpu`` pipelines' code -> pixels.
5. annotation files: every line of their ``annotation/*.txt`` is parsed; a sample of
   lines per file is written verbatim next to a frame tree laid out like their paths
   under a new root, and dferbench's ``dfew`` / ``ferv39k`` / ``mafw`` datasets are built
   from it -> every fold, clip, label and frame count; FERV39k's labels are checked
   against the emotion folder of each path.

CoOp / Co-CoOp: their ``CustomCLIP`` (CoOp with a generic and a class-specific context,
class token at the end, middle and front; Co-CoOp with its meta-net) against dferbench's
``CoOp`` / ``CoCoOp`` with the same context (and meta-net) weights, on the same image
features: tokenised prompts, logits, and the gradients of the trainable parameters.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import torch


def _shim_pkg_resources(scratch: Path) -> None:
    if importlib.util.find_spec("pkg_resources") is None:
        shim = scratch / "shim" / "pkg_resources"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "__init__.py").write_text("import packaging\nimport packaging.version\n")
        sys.path.insert(0, str(shim.parent))


def _forget_clip_package() -> None:
    """Both repositories ship a top-level ``clip`` package: drop the one imported before."""
    for name in [n for n in sys.modules if n == "clip" or n.startswith("clip.")]:
        del sys.modules[name]


def _import_dfer_clip(repo: Path, scratch: Path) -> types.SimpleNamespace:
    _shim_pkg_resources(scratch)
    if importlib.util.find_spec("einops") is None:
        sys.exit("the authors' temporal model imports einops: pip install einops")
    _forget_clip_package()
    sys.path[:0] = [str(repo / "models"), str(repo)]
    from clip import model as clip_model  # noqa: E402  (theirs)
    from dataloader import video_dataloader, video_transform  # noqa: E402
    from Generate_Model import GenerateModel  # noqa: E402
    import Text  # noqa: E402

    return types.SimpleNamespace(build_clip=clip_model.build_model, GenerateModel=GenerateModel, Text=Text,
                                 test_data_loader=video_dataloader.test_data_loader,
                                 train_data_loader=video_dataloader.train_data_loader, transforms=video_transform)


def _import_coop(repo: Path, scratch: Path) -> types.SimpleNamespace:
    _shim_pkg_resources(scratch)
    registry = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))
    for name, attrs in {"dassl": {}, "dassl.engine": {"TRAINER_REGISTRY": registry, "TrainerX": object},
                        "dassl.metrics": {"compute_accuracy": None},
                        "dassl.utils": {"load_pretrained_weights": None, "load_checkpoint": None},
                        "dassl.optim": {"build_optimizer": None, "build_lr_scheduler": None}}.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules.setdefault(name, module)
    _forget_clip_package()
    sys.path.insert(0, str(repo))
    from clip import model as clip_model  # noqa: E402  (theirs)
    from trainers import cocoop, coop  # noqa: E402

    return types.SimpleNamespace(build_clip=clip_model.build_model, coop=coop, cocoop=cocoop)


def _shared_backbone(build_clip: Any) -> tuple[Any, Any, Any]:
    """One random ViT-B/32 as (open_clip model, the authors' CLIP, tokenizer) with equal
    weights: OpenAI's ``build_model`` rounds to fp16, so open_clip's copy takes its weights."""
    import open_clip

    torch.manual_seed(0)
    backbone = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None, precision="fp32")
    theirs = build_clip(copy.deepcopy(backbone.state_dict())).float()
    backbone.load_state_dict(theirs.state_dict())
    return backbone.eval(), theirs, open_clip.get_tokenizer("ViT-B-32-quickgelu")


def compare_model(authors: types.SimpleNamespace, scratch: Path, steps: int = 2) -> None:
    from dferbench_plugins.dferclip.authors import convert_authors_state_dict, load_authors_checkpoint
    from dferbench_plugins.dferclip.network import build_optimizer

    _, their_clip, _ = _shared_backbone(authors.build_clip)
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
    from dferbench.testing import write_frames
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


ANNOTATED = {"DFEW": "dfew", "FERV39K": "ferv39k", "MAFW": "mafw"}  # file prefix -> dataset


def compare_annotations(repo: Path, scratch: Path, per_file: int = 60) -> None:
    import io
    import random

    from PIL import Image

    from dferbench_plugins.datasets.annotations import parse_annotation_file
    from dferbench_plugins.datasets.layouts import FERV39K_CLASSES, FERV39K_EMOTIONS, build_dfew, build_ferv39k, build_mafw

    builders = {"dfew": build_dfew, "ferv39k": build_ferv39k, "mafw": build_mafw}
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 90, 60)).save(buffer, format="JPEG")
    frame = buffer.getvalue()
    rng = random.Random(0)
    expected: dict[str, dict[tuple[int, str, str], tuple[int, int]]] = {d: {} for d in builders}
    emotions: dict[str, set[int]] = {}
    for path in sorted((repo / "annotation").glob("*.txt")):
        prefix, *rest = path.stem.split("_")
        dataset = ANNOTATED[prefix]
        fold = int(rest[1]) if rest[0] == "set" else 1
        lines, errors = parse_annotation_file(path, 11 if dataset == "mafw" else 7, strict=False)
        if errors:
            raise SystemExit(f"annotation: {path.name}: {errors[0]}")
        if dataset == "ferv39k":
            for line in lines:
                emotions.setdefault(line.path.split("/")[-2], set()).add(line.label)
        sample = rng.sample(lines, min(per_file, len(lines)))
        ann = scratch / "annotation" / dataset
        ann.mkdir(parents=True, exist_ok=True)
        (ann / path.name).write_text("".join(f"{a.path} {a.n_frames} {a.label}\n" for a in sample))
        for a in sample:
            folder = scratch / "tree" / dataset / a.path.split(f"/{prefix}/", 1)[1]
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, a.n_frames + 1):
                (folder / f"{i:05d}.jpg").write_bytes(frame)
            expected[dataset][(fold, path.stem.rsplit("_", 1)[1], str(folder))] = (a.n_frames, a.label)
        print(f"annotation {path.name}: {len(lines)} lines parsed, no errors")
    named = {name: sorted(labels) for name, labels in emotions.items()}
    ours = {name: [FERV39K_CLASSES.index(FERV39K_EMOTIONS[name.lower()])] for name in named}
    print(f"FERV39k emotion folder -> their label {named}; dferbench's class of that name: "
          f"{'same for all' if named == ours else ours}")
    for dataset, build in builders.items():
        data = build({"root": str(scratch / "tree" / dataset), "annotations": str(scratch / "annotation" / dataset)})
        got = {(fold, split, r.source): (r.n_frames, r.label)
               for fold in data.folds for split in ("train", "test") for r in data.split(fold, split)}
        print(f"{dataset}: folds {data.folds}, {len(got)} clips built from the sampled lines; "
              f"sources, frame counts and labels {'identical' if got == expected[dataset] else 'DIFFERENT'}")


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
    from dferbench.testing import write_frames
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


def compare_coop(authors: types.SimpleNamespace) -> None:
    import torch.nn.functional as F

    from dferbench_plugins.baselines.coop import CoCoOp, CoOp

    backbone, their_clip, tokenizer = _shared_backbone(authors.build_clip)
    names = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    texts = [f"{name}." for name in names]  # dferbench's class-names text set; CoOp appends the "."
    features = torch.randn(3, backbone.visual.output_dim, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([1, 4, 6])
    variants = [("CoOp", False, "end"), ("CoOp CSC", True, "end"), ("CoOp", False, "middle"),
                ("CoOp", False, "front"), ("Co-CoOp", False, "end")]
    for name, csc, position in variants:
        cfg = types.SimpleNamespace(
            INPUT=types.SimpleNamespace(SIZE=(224, 224)),
            TRAINER=types.SimpleNamespace(
                COOP=types.SimpleNamespace(N_CTX=16, CTX_INIT="", CSC=csc, CLASS_TOKEN_POSITION=position, PREC="fp32"),
                COCOOP=types.SimpleNamespace(N_CTX=4, CTX_INIT="a photo of a", PREC="fp32")))
        torch.manual_seed(1)
        if name == "Co-CoOp":
            theirs = authors.cocoop.CustomCLIP(cfg, names, their_clip)
            ours = CoCoOp(backbone, texts, tokenizer=tokenizer)
            same_init = torch.equal(theirs.prompt_learner.ctx, ours.prompt_learner.ctx)
            ours.meta_net.load_state_dict(theirs.prompt_learner.meta_net.state_dict())
            trainable = {"ctx": (theirs.prompt_learner.ctx, ours.prompt_learner.ctx)}
            trainable.update({f"meta_net.{k}": (p, dict(ours.meta_net.named_parameters())[k])
                              for k, p in theirs.prompt_learner.meta_net.named_parameters()})
        else:
            theirs = authors.coop.CustomCLIP(cfg, names, their_clip)
            ours = CoOp(backbone, texts, tokenizer=tokenizer, n_ctx=16, class_specific=csc,
                        class_token_position=position)
            same_init = None
            trainable = {"ctx": (theirs.prompt_learner.ctx, ours.prompt_learner.ctx)}
        with torch.no_grad():
            ours.prompt_learner.ctx.copy_(theirs.prompt_learner.ctx)
        theirs.image_encoder = torch.nn.Identity()  # both score the same image features
        theirs.eval()
        ours.eval()
        a, b = theirs(features), ours(features)
        F.cross_entropy(a, labels).backward()
        F.cross_entropy(b, labels).backward()
        grads = max((p.grad - q.grad).abs().max().item() for p, q in trainable.values())
        print(f"{name:8s} class token {position:6s}: tokenised prompts identical "
              f"{torch.equal(theirs.tokenized_prompts, ours.tokenized_prompts)}"
              + (f", phrase-initialised context identical {same_init}" if same_init is not None else "")
              + f"; logits max |diff| {(a - b).abs().max().item():.3g} (largest {a.abs().max().item():.3g}); "
              f"gradients ({', '.join(trainable)}) max |diff| {grads:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dfer-clip", type=Path, help="checkout of zengqunzhao/DFER-CLIP")
    parser.add_argument("--coop", type=Path, help="checkout of KaiyangZhou/CoOp")
    parser.add_argument("--skip-model", action="store_true", help="DFER-CLIP: only the data comparisons (fast)")
    args = parser.parse_args()
    if not (args.dfer_clip or args.coop):
        parser.error("give --dfer-clip PATH and/or --coop PATH")
    for path, marker in ((args.dfer_clip, "models/Generate_Model.py"), (args.coop, "trainers/coop.py")):
        if path is not None and not (path / marker).is_file():
            parser.error(f"{path} is not the expected checkout (no {marker})")
    with tempfile.TemporaryDirectory() as tmp:
        if args.dfer_clip:
            authors = _import_dfer_clip(args.dfer_clip.resolve(), Path(tmp))
            if not args.skip_model:
                compare_model(authors, Path(tmp))
            compare_test_loader(authors, Path(tmp))
            compare_train_augmentation(authors, Path(tmp))
            compare_annotations(args.dfer_clip.resolve(), Path(tmp))
        if args.coop:
            compare_coop(_import_coop(args.coop.resolve(), Path(tmp)))


if __name__ == "__main__":
    main()
