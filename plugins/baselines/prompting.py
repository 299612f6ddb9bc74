"""CoOp and Co-CoOp as dferbench methods: frozen CLIP, learnable prompts, CoOp's optimiser.

Optimiser and schedule as in CoOp's configs (Dassl): SGD (momentum 0.9, weight decay
5e-4) on the prompt learner only, cosine annealing over the epochs after one warm-up
epoch at a constant 1e-5, stepped once per epoch; the last epoch is evaluated.

Frozen image encoder, so test clips are always scored from the feature cache. Training
either runs the frozen encoder on every augmented, train-sampled batch (CoOp's recipe:
random resized crop + flip) or, with ``train_on_cached_features``, on the cached
test-time-sampled, un-augmented features of the training clips (each clip encoded once;
a recorded deviation from the recipe, used by the CPU-sized synthetic presets).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from dferbench.errors import DferbenchError


def warmup_cosine(optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: int,
                  warmup_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Dassl's ``ConstantWarmupScheduler`` around ``CosineAnnealingLR(T_max=epochs)``,
    per epoch: epochs ``< warmup_epochs`` run at ``warmup_lr``, epoch ``e`` after them at
    ``base * (1 + cos(pi * (e - warmup_epochs) / epochs)) / 2``."""
    bases = [g["lr"] for g in optimizer.param_groups]

    def factor(base: float):
        def f(epoch: int) -> float:
            if epoch < warmup_epochs:
                return warmup_lr / base
            return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / max(epochs, 1)))

        return f

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(b) for b in bases])


class PromptMethod:
    """Shared by CoOp and Co-CoOp; subclasses build the network."""

    def __init__(self, ctx):
        from dferbench.models.clip import create_clip
        from dferbench.models.features import weights_digest
        from dferbench_plugins.baselines.common import single_sentences

        self.ctx = ctx
        clip, tokenizer = create_clip(ctx.options["clip_model"], ctx.options["pretrained"] or None, device="cpu")
        try:
            self.module = self.build(clip, single_sentences(ctx), tokenizer, ctx.options)
        except ValueError as exc:  # bad context settings (n_ctx, ctx_init, positions)
            raise DferbenchError(f"{ctx.model}: {exc}") from None
        self.module.to(ctx.device)
        self.weights_id = weights_digest(self.module.image_encoder)

    def build(self, clip, class_texts: list[str], tokenizer, options: dict[str, Any]) -> torch.nn.Module:
        raise NotImplementedError

    def features(self, clips):
        from dferbench_plugins.baselines.common import FeatureSet, frozen_features

        return FeatureSet(frozen_features(self.module.image_encoder, clips, self.ctx, self.weights_id), clips.labels)

    def fit(self, train, monitor) -> dict[str, Any]:
        from dferbench.run.engine import train_module
        from dferbench.plugin.method import require_training_clips

        require_training_clips(train)
        o, t = self.ctx.options, self.ctx.train
        params = [p for p in self.module.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
        scheduler = warmup_cosine(optimizer, t["epochs"], o["warmup_epochs"], o["warmup_lr"])
        if monitor.test_clips is not None:  # scored per epoch as predict() scores them: frozen fp32 features
            monitor = replace(monitor, test_clips=self.features(monitor.test_clips))
        if o["train_on_cached_features"]:
            train = self.features(train)
        info = train_module(self.module, optimizer, scheduler, train, monitor, epochs=t["epochs"],
                            batch_size=t["batch_size"], device=self.ctx.device, seed=self.ctx.seed,
                            precision=t["precision"], eval_batch_size=t["eval_batch_size"],
                            compile=t.get("compile", False))
        info.update(trainable_parameters=sum(p.numel() for p in params), n_ctx=self.module.prompt_learner.n_ctx,
                    text_tokens=self.module.n_tokens)
        return info

    def predict(self, clips):
        from dferbench.run.engine import predict_module

        return predict_module(self.module, self.features(clips), batch_size=self.ctx.train["eval_batch_size"],
                              device=self.ctx.device, precision=self.ctx.train["precision"], enabled_progress=False)


class CoOpMethod(PromptMethod):
    def build(self, clip, class_texts, tokenizer, options):
        from dferbench_plugins.baselines.coop import CoOp

        if options["ctx_init"] and options["class_specific"]:
            raise ValueError("ctx_init gives one generic context (as in CoOp); set model.class_specific=false "
                             "or model.ctx_init=\"\"")
        return CoOp(clip, class_texts, tokenizer=tokenizer, n_ctx=options["n_ctx"],
                    class_specific=options["class_specific"], class_token_position=options["class_token_position"],
                    ctx_init=options["ctx_init"] or None)


class CoCoOpMethod(PromptMethod):
    def build(self, clip, class_texts, tokenizer, options):
        from dferbench_plugins.baselines.coop import CoCoOp

        return CoCoOp(clip, class_texts, tokenizer=tokenizer, n_ctx=options["n_ctx"],
                      ctx_init=options["ctx_init"] or None)
