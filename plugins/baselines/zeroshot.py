"""Zero-shot CLIP and FaRL: frame-averaged image features against a text classifier, no training."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dferbench import Option, check_text_set

OPTIONS = {
    "clip_model": "ViT-B-32-quickgelu",
    "pretrained": Option("openai", "open_clip tag, a local file, or '' for random weights", path=True),
    "text": Option("class-names", "a registered text set or file:PATH; several sentences per class are averaged",
                   check=check_text_set, path=True),
    "logit_scale": Option(100.0, "CLIP's trained temperature, as CLIP_benchmark uses", gt=0),
    "feature_cache": Option(True, "keep frozen image features on disk for the next run", execution=True),
}

PRESETS = {
    # CLIP_benchmark feeds CLIP-normalised pixels.
    "default": {"data": {"normalize": "clip"}},
    **{name: {"data": {"normalize": "clip", "image_size": 64, "num_frames": 8},
              "model": {"clip_model": "dferbench-tiny", "pretrained": "dferbench-synthetic"}}
       for name in ("synthetic", "synthetic-11", "synthetic-wild")},
}

# FaRL ViT-B/16 from its released file (FacePerceiver/FaRL); the DFER-CLIP paper used ep16.
FARL_OPTIONS = {**OPTIONS, "clip_model": "ViT-B-16-quickgelu",
                "pretrained": replace(OPTIONS["pretrained"], default="FaRL-Base-Patch16-LAIONFace20M-ep16.pth")}

# FaRL was trained on CLIP-normalised 224 px face crops; 16 frames per clip as every DFER
# baseline. No synthetic preset: there are no FaRL weights for the embedded tiny CLIP, so
# `--model all --dataset synthetic` skips it (tests run it on a FaRL-format file they write).
FARL_PRESETS = {name: {"data": {"normalize": "clip", "image_size": 224, "num_frames": 16}}
                for name in ("dfew", "ferv39k", "mafw")}


class ZeroShotCLIP:
    def __init__(self, ctx):
        import torch

        from dferbench.models.zeroshot import text_classifier

        self.ctx = ctx
        self.model, tokenizer = self.load(ctx.options, ctx.device)
        self.model.eval()
        with torch.no_grad():
            texts = ctx.texts(ctx.options["text"], ctx.classes)
            self.classifier = text_classifier(self.model, tokenizer, texts, device=ctx.device)  # [D, C]

    def load(self, options: dict[str, Any], device: str):
        from dferbench.models.clip import create_clip

        return create_clip(options["clip_model"], options["pretrained"] or None, device=device)

    def fit(self, train, monitor) -> dict[str, Any]:
        return {}

    def predict(self, clips):
        from dferbench.models.features import cached_frame_features, video_features

        cache = self.ctx.workdir / "features" if self.ctx.options["feature_cache"] else None
        frames = cached_frame_features(self.model.visual, clips, cache_dir=cache, device=self.ctx.device,
                                       batch_size=self.ctx.train["eval_batch_size"],
                                       enabled_progress=self.ctx.progress)
        return self.ctx.options["logit_scale"] * video_features(frames) @ self.classifier


class ZeroShotFaRL(ZeroShotCLIP):
    def load(self, options: dict[str, Any], device: str):
        from dferbench_plugins.baselines.farl import load_farl

        model, tokenizer, self.load_report = load_farl(options["pretrained"], options["clip_model"], device=device)
        return model, tokenizer

    def fit(self, train, monitor) -> dict[str, Any]:
        return {"farl_weights": self.load_report}


def register_zeroshot(register) -> None:
    """Register zero-shot CLIP and zero-shot FaRL (called by the baselines plugin's hook)."""
    from dferbench_plugins.baselines.farl import farl_source

    register("zeroshot-clip", ZeroShotCLIP, options=OPTIONS, presets=PRESETS, family="text-based", temporal=False,
             description="Zero-shot CLIP: mean frame feature vs. a text classifier (100 x cosine)")
    register("zeroshot-farl", ZeroShotFaRL, options=FARL_OPTIONS, presets=FARL_PRESETS, family="text-based",
             temporal=False, weights_help=farl_source(),
             description="Zero-shot FaRL ViT-B/16 (face-domain CLIP, local weights file) vs. a text classifier")
