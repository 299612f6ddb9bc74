"""DFER-CLIP (Zhao & Patras, BMVC 2023), the reference model: CLIP image encoder per
frame, temporal transformer, learnable context + class descriptions through the frozen
CLIP text encoder, logits = cosine / 0.01."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dferbench import Option, check_text_set, hookimpl

PRESETS_DIR = Path(__file__).parent / "presets"

# The paper's values (authors' main.py and train_*.sh); see shared/reference/dfer-clip.md.
OPTIONS: dict[str, Any] = {
    "clip_model": "ViT-B-32-quickgelu",
    "pretrained": Option("openai", "open_clip tag, a local file, or '' for random weights", path=True),
    "text": Option("descriptors", "a registered text set, or file:PATH", check=check_text_set, path=True),
    "n_ctx": Option(8, "learnable context tokens (train_*.sh pass 8; argparse default 4)", ge=1),
    "class_specific": True,
    "class_token_position": Option("end", "where the class text sits among the context tokens",
                                   choices=("end", "middle", "front")),
    "temporal_depth": Option(1, "temporal transformer layers; 0 = mean of frame features (\"without temporal "
                             "model\")", ge=0),
    "temperature": Option(0.01, "logits = cosine / temperature", gt=0),
    "lr_temporal": Option(1e-2, ge=0),
    "lr_image": Option(1e-5, ge=0),
    "lr_prompt": Option(1e-3, ge=0),
    "momentum": Option(0.9, ge=0),
    "weight_decay": Option(1e-4, ge=0),
    "milestones": Option([30, 40], "epochs after which the learning rates are multiplied by gamma",
                         item=Option(1, ge=1)),
    "gamma": Option(0.1, gt=0),
    "save_checkpoint": Option(False, "write the final weights next to the result (foldK-seedS.checkpoint."
                              "safetensors)", execution=True),
}


def build_network(class_texts: list[str], options: dict[str, Any], num_frames: int, device: str = "cpu"):
    from dferbench.models.clip import create_clip
    from dferbench_plugins.dferclip.network import DFERCLIP

    clip, tokenizer = create_clip(options["clip_model"], options["pretrained"] or None, device="cpu")
    model = DFERCLIP(clip, class_texts, tokenizer=tokenizer, n_ctx=options["n_ctx"],
                     class_specific=options["class_specific"],
                     class_token_position=options["class_token_position"],
                     temporal_depth=options["temporal_depth"], temperature=options["temperature"],
                     num_frames=num_frames, clip_model_name=options["clip_model"])
    return model.to(device)


def rebuild_network(info, device: str = "cpu"):
    """The network a dferbench checkpoint's sidecar describes (the core loads its weights)."""
    from dferbench_plugins.dferclip.loading import rebuild_network as rebuild

    return rebuild(info, device)


def load_checkpoint(path, options: dict[str, Any], device: str = "cpu"):
    """The authors' ``.pth`` files and dferbench's earlier DFER-CLIP checkpoints."""
    from dferbench_plugins.dferclip.loading import load_checkpoint as load

    return load(path, options, device)


class DFERCLIPMethod:
    def __init__(self, ctx):
        from dferbench.errors import DferbenchError

        self.ctx = ctx
        texts = ctx.texts(ctx.options["text"], ctx.classes)
        if any(len(t) != 1 for t in texts):
            raise DferbenchError(f"DFER-CLIP reads one sentence per class; text set {ctx.options['text']!r} "
                                 "gives several (an ensemble): choose a single-sentence text set")
        self.model = build_network([t[0] for t in texts], ctx.options,
                                   ctx.config["data"]["num_frames"], ctx.device)

    def fit(self, train, monitor) -> dict[str, Any]:
        from dferbench.run.engine import train_module
        from dferbench_plugins.dferclip.network import build_optimizer

        o, t = self.ctx.options, self.ctx.train
        optimizer, scheduler = build_optimizer(
            self.model, epochs=t["epochs"], milestones=o["milestones"], gamma=o["gamma"], momentum=o["momentum"],
            weight_decay=o["weight_decay"], lr_temporal=o["lr_temporal"], lr_image=o["lr_image"],
            lr_prompt=o["lr_prompt"])
        info = train_module(self.model, optimizer, scheduler, train, monitor, epochs=t["epochs"],
                            batch_size=t["batch_size"], device=self.ctx.device, seed=self.ctx.seed,
                            precision=t["precision"], eval_batch_size=t["eval_batch_size"],
                            compile=t.get("compile", False))
        if o["save_checkpoint"]:
            from dferbench_plugins.dferclip.loading import rebuild_info

            path = self.ctx.save_checkpoint(self.model, rebuild=rebuild_info(self.model),
                                            class_texts=list(self.model.class_texts), text_set=o["text"])
            info["checkpoint"] = str(path)
        return info

    def predict(self, clips):
        from dferbench.run.engine import predict_module

        return predict_module(self.model, clips, batch_size=self.ctx.train["eval_batch_size"], device=self.ctx.device,
                              precision=self.ctx.train["precision"], enabled_progress=self.ctx.progress)


@hookimpl
def dferbench_register_models(register):
    presets = {p.stem: str(p) for p in sorted(PRESETS_DIR.glob("*.toml"))}
    register("dferclip", DFERCLIPMethod, options=OPTIONS, presets=presets, family="text-based", temporal=True,
             network=build_network, rebuild=rebuild_network, load_checkpoint=load_checkpoint,
             description="DFER-CLIP: CLIP + temporal transformer + learnable-context class descriptions")
