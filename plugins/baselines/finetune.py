"""Full fine-tuning: the CLIP image encoder + a linear classifier, trained end to end.

``finetune`` classifies the mean of the frame features; ``finetune-tm`` puts DFER-CLIP's
temporal transformer before the classifier. The optimiser, schedule and data pipeline
are DFER-CLIP's (the paper's classifier-based baselines come from the same code): SGD,
momentum 0.9, weight decay 1e-4, MultiStepLR, image encoder at 1e-5, temporal model at
1e-2; the new linear head also at 1e-2 (a new layer, like the temporal model).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dferbench import full_precision


class FineTuneNet(nn.Module):
    """``video [B, T, 3, H, W]`` -> image encoder per frame -> temporal model -> linear head."""

    def __init__(self, visual: nn.Module, n_classes: int, temporal_depth: int = 0, num_frames: int = 16):
        from dferbench import build_temporal_model

        super().__init__()
        self.image_encoder = visual
        width = visual.output_dim
        self.temporal_net = build_temporal_model(width, depth=temporal_depth, num_frames=num_frames)
        self.head = nn.Linear(width, n_classes)
        for p in self.image_encoder.parameters():
            p.requires_grad_(True)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        dtype = next(self.image_encoder.parameters()).dtype
        frames = self.image_encoder(video.flatten(0, 1).to(dtype))  # [B*T, E]
        features = self.temporal_net(frames.reshape(b, t, -1))  # [B, T, E] -> [B, E]
        with full_precision(features):
            return self.head(features.float())  # [B, C]

    def param_groups(self, lr_image: float, lr_temporal: float, lr_head: float) -> list[dict[str, Any]]:
        groups = [{"name": "image_encoder", "params": list(self.image_encoder.parameters()), "lr": lr_image},
                  {"name": "temporal_net", "params": list(self.temporal_net.parameters()), "lr": lr_temporal},
                  {"name": "head", "params": list(self.head.parameters()), "lr": lr_head}]
        return [g for g in groups if g["params"]]  # the frame mean has no parameters


class FineTune:
    def __init__(self, ctx):
        from dferbench import create_clip

        self.ctx = ctx
        o = ctx.options
        clip, _ = create_clip(o["clip_model"], o["pretrained"] or None, device="cpu")
        depth = o.get("temporal_depth", 0)  # finetune has no temporal model option
        self.module = FineTuneNet(clip.visual, len(ctx.classes), depth, ctx.config["data"]["num_frames"])
        del clip  # the text tower is not used
        self.module.to(ctx.device)

    def fit(self, train, monitor) -> dict[str, Any]:
        from dferbench import train_module

        o, t = self.ctx.options, self.ctx.train
        groups = self.module.param_groups(o["lr_image"], o.get("lr_temporal", 0.0), o["lr_head"])
        optimizer = torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, sorted(o["milestones"]), gamma=o["gamma"])
        return train_module(self.module, optimizer, scheduler, train, monitor, epochs=t["epochs"],
                            batch_size=t["batch_size"], device=self.ctx.device, seed=self.ctx.seed,
                            precision=t["precision"], eval_batch_size=t["eval_batch_size"],
                            compile=t.get("compile", False))

    def predict(self, clips):
        from dferbench import predict_module

        return predict_module(self.module, clips, batch_size=self.ctx.train["eval_batch_size"], device=self.ctx.device,
                              precision=self.ctx.train["precision"], enabled_progress=self.ctx.progress)
