"""Zero-shot CLIP: frame-averaged image features against a text classifier, no training."""

from __future__ import annotations

from typing import Any

from dferbench import hookimpl

OPTIONS = {
    "clip_model": "ViT-B-32-quickgelu",
    "pretrained": "openai",
    "text": "class-names",  # a registered text set; several sentences per class are averaged
    "logit_scale": 100.0,  # CLIP's trained temperature, as CLIP_benchmark uses
    "feature_cache": True,
}

PRESETS = {
    # CLIP_benchmark feeds CLIP-normalised pixels.
    "default": {"data": {"normalize": "clip"}},
    "synthetic": {"data": {"normalize": "clip", "image_size": 64},
                  "model": {"clip_model": "dferbench-tiny", "pretrained": ""}},
    "synthetic-11": {"data": {"normalize": "clip", "image_size": 64},
                     "model": {"clip_model": "dferbench-tiny", "pretrained": ""}},
}


class ZeroShotCLIP:
    def __init__(self, ctx):
        import torch

        from dferbench.models.clip import create_clip
        from dferbench.models.zeroshot import text_classifier

        self.ctx = ctx
        opts = ctx.options
        self.model, tokenizer = create_clip(opts["clip_model"], opts["pretrained"] or None, device=ctx.device)
        self.model.eval()
        with torch.no_grad():
            texts = ctx.texts(opts["text"], ctx.classes)
            self.classifier = text_classifier(self.model, tokenizer, texts, device=ctx.device)  # [D, C]

    def fit(self, train, monitor) -> dict[str, Any]:
        return {}

    def predict(self, clips):
        from dferbench.models.features import cached_frame_features, video_features

        cache = self.ctx.workdir / "features" if self.ctx.options["feature_cache"] else None
        frames = cached_frame_features(self.model.visual, clips, cache_dir=cache, device=self.ctx.device,
                                       batch_size=self.ctx.train["eval_batch_size"],
                                       enabled_progress=self.ctx.progress)
        return self.ctx.options["logit_scale"] * video_features(frames) @ self.classifier


@hookimpl
def dferbench_register_models(register):
    register("zeroshot-clip", ZeroShotCLIP, options=OPTIONS, presets=PRESETS, family="text-based", temporal=False,
             description="Zero-shot CLIP: mean frame feature vs. a text classifier (100 x cosine)")
