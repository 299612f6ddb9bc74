"""Pre-train a tiny CLIP on rendered synthetic faces and their captions.

Offline there are no pretrained CLIP weights, so the embedded benchmark ships its own:
``dferbench-tiny`` trained from scratch on (rendered frame, caption) pairs generated on
the fly (``data.synthetic`` renders, ``data.captions`` describes). Captions never name an
emotion, so zero-shot classification with class descriptors has to go through the
facial actions the model learned, as CLIP goes through what web captions describe.

The recipe (it is what made the loss leave the ``ln(batch)`` plateau in trial runs):
AdamW, linear warm-up then cosine decay, logit scale clamped at 100, and one shared
linear head that predicts the active facial actions (multi-label BCE) from both the image
and the caption embedding: ``loss = clip + image_bce + text_bce``.

Identities are disjoint from the benchmark's by construction: pre-training clips come
from generator seeds ``PRETRAIN_SEED_BASE + 2 * seed`` (training) and ``... + 1``
(held-out evaluation), and an identity is a pure function of ``(generator seed, subject
index)``. Benchmark datasets use small generator seeds (the presets use 0), far below
``PRETRAIN_SEED_BASE``, so they draw from other random streams;
``tests/test_pretrain.py`` checks that no parameter of a pre-training identity coincides
with one of ``make_synthetic_dataset(seed=0)``'s.

Determinism: every batch is a pure function of ``(seed, step)``; model init follows
``torch.manual_seed(seed)``; the thread count is fixed. Rebuilding with the same
arguments, torch version and CPU reproduces the weights file bit for bit.

Rebuild the shipped checkpoint with the command stored in its JSON (``rebuild_command``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dferbench_plugins.synthetic import SYNTHETIC_WEIGHTS
from dferbench_plugins.synthetic.pretrain_data import (
    PRETRAIN_SEED_BASE,
    _PairBatches,
    batch_specs,
    heldout_set,
    pretrain_generator_seeds,
)

__all__ = [
    "PRETRAIN_SEED_BASE",
    "SHIPPED_WEIGHTS",
    "batch_specs",
    "encode_text_trimmed",
    "evaluate",
    "heldout_set",
    "main",
    "pretrain_clip",
    "pretrain_generator_seeds",
    "save_weights",
    "sha256_file",
]

SHIPPED_WEIGHTS = SYNTHETIC_WEIGHTS

_MAX_LOGIT_SCALE = math.log(100.0)
_NAME_TEMPLATE = "{}."  # the benchmark's "class-names" prompt
METRIC_NAMES = ("zs7_desc_uar", "zs7_desc_apex_uar", "zs7_names_uar", "zs11_desc_uar", "zs11_desc_apex_uar",
                "zs11_names_uar", "retrieval_top1_of50")
"""Keys of :func:`evaluate` (learning-curve columns)."""


def encode_text_trimmed(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` on tokens cut after the longest caption's end token.

    Exactly equivalent for open_clip's causal, argmax-pooled text tower (no position
    attends to later padding), and 2-3x cheaper than running all 77 positions.
    """
    from open_clip.transformer import text_global_pool

    length = int((tokens != 0).sum(dim=1).max())
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


# --------------------------------------------------------------------------------------
# Held-out evaluation


def _descriptor_table() -> dict[str, str]:
    """The registered ``descriptors`` text set (the textsets plugin's) for the 11 classes."""
    from dferbench import MAFW_CLASSES, class_texts

    return {c: texts[0] for c, texts in zip(MAFW_CLASSES, class_texts("descriptors", MAFW_CLASSES))}


def _zero_shot_uar(feats: torch.Tensor, labels: np.ndarray, class_feats: torch.Tensor, classes: Sequence[int]) -> float:
    from dferbench import uar

    keep = np.isin(labels, classes)
    scores = feats[torch.from_numpy(keep)] @ class_feats.T
    pred = np.asarray(classes)[scores.argmax(dim=1).numpy()]
    return uar(labels[keep], pred)


@torch.no_grad()
def evaluate(model: nn.Module, tokenizer: Any, heldout: dict[str, Any], batch: int = 512) -> dict[str, float]:
    """Zero-shot UAR (7 DFEW classes and 11 MAFW classes; descriptors and class names;
    clip = mean of the clip's frame embeddings, apex = its apex frame only) and
    image-to-caption top-1 retrieval among groups of 50, on a ``heldout_set``."""
    from dferbench_plugins.synthetic.render import DFEW_CLASSES, MAFW_CLASSES

    was_training = model.training
    model.eval()
    images = heldout["images"]
    feats = torch.cat([model.encode_image(images[i:i + batch]) for i in range(0, len(images), batch)])
    feats = F.normalize(feats.float(), dim=-1)
    f = heldout["frames_per_clip"]
    per_clip = feats.view(-1, f, feats.shape[-1])
    clip_feats = F.normalize(per_clip.mean(dim=1), dim=-1)
    apex_feats = per_clip[torch.arange(len(per_clip)), torch.from_numpy(heldout["apex"])]
    labels = heldout["labels"]

    table = _descriptor_table()
    texts = {"desc": [table[c] for c in MAFW_CLASSES], "names": [_NAME_TEMPLATE.format(c) for c in MAFW_CLASSES]}
    out: dict[str, float] = {}
    for kind, sentences in texts.items():
        cls = F.normalize(model.encode_text(tokenizer(sentences)).float(), dim=-1)
        for n_cls in (len(DFEW_CLASSES), len(MAFW_CLASSES)):
            classes = list(range(n_cls))  # MAFW's first seven classes are DFEW's, in DFEW order
            out[f"zs{n_cls}_{kind}_uar"] = _zero_shot_uar(clip_feats, labels, cls[:n_cls], classes)
            if kind == "desc":
                out[f"zs{n_cls}_{kind}_apex_uar"] = _zero_shot_uar(apex_feats, labels, cls[:n_cls], classes)

    pairs = heldout["pairs"]
    hits = total = 0
    for g in range(0, len(pairs) - 49, 50):
        group = pairs[g:g + 50]
        img = feats[[k for k, _ in group]]
        txt = F.normalize(model.encode_text(tokenizer([c for _, c in group])).float(), dim=-1)
        hits += int((((img @ txt.T).argmax(dim=1)) == torch.arange(len(group))).sum())
        total += len(group)
    if total:
        out["retrieval_top1_of50"] = 100.0 * hits / total
    model.train(was_training)
    return out


# --------------------------------------------------------------------------------------
# Training


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_weights(state: dict[str, torch.Tensor], path: Path, *, fp16: bool) -> None:
    """Write a state dict as safetensors, floats as fp16 or fp32, byte-for-byte reproducibly."""
    import safetensors.torch

    saved = {k: (v.half() if fp16 else v.float()) if v.is_floating_point() else v for k, v in state.items()}
    # One metadata key only: safetensors writes metadata from a hash map, so with several
    # keys their order (hence the file's bytes and sha256) changes from process to process.
    safetensors.torch.save_file(saved, str(path), metadata={"format": "pt"})
    path.chmod(0o644)


def _param_groups(model: nn.Module, head: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in list(model.named_parameters()) + [("head." + n, p) for n, p in head.named_parameters()]:
        # open_clip's convention: no decay on gains, biases, embeddings and the temperature.
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name or name.endswith("bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_factor(step: int, warmup: int, steps: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _rebuild_command(out_path: Path, args: dict[str, Any], defaults: dict[str, Any]) -> str:
    parts = ["python -m dferbench_plugins.synthetic.pretrain", f"--out {out_path}"]
    for key, value in args.items():
        if key == "steps" or value != defaults.get(key):
            parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


_DEFAULTS: dict[str, Any] = {
    "model_name": "dferbench-tiny", "batch_size": 256, "seed": 0, "lr": 1e-3, "warmup": 100,
    "weight_decay": 0.1, "n_identities": 4096, "frames_per_clip": 2, "apex_frames": 1, "threads": 1, "workers": 1, "storage": "auto",
    "eval_every": 250, "eval_clips_per_class": 16, "eval_frames": 8,
}


def pretrain_clip(
    out_path: str | os.PathLike,
    *,
    steps: int,
    batch_size: int = 256,
    seed: int = 0,
    lr: float = 1e-3,
    warmup: int = 100,
    weight_decay: float = 0.1,
    model_name: str = "dferbench-tiny",
    n_identities: int = 4096,
    frames_per_clip: int = 2,
    apex_frames: int = 1,
    threads: int = 1,
    workers: int = 1,
    storage: str = "auto",
    log_every: int = 25,
    eval_every: int = 250,
    eval_clips_per_class: int = 16,
    eval_frames: int = 8,
    progress: bool | Callable[[dict[str, Any]], None] = False,
) -> dict[str, Any]:
    """Train ``model_name`` from scratch on synthetic (frame, caption) pairs.

    Writes ``out_path`` (safetensors state dict of the open_clip model), ``<stem>.json``
    (config, recipe, metrics, sha256, rebuild command) and ``<stem>.curves.csv`` (one row
    per ``log_every`` steps: losses; every ``eval_every`` steps and at the end also the
    held-out metrics of :func:`evaluate`). Returns the JSON's content.

    ``threads`` torch threads (at most 2; 1 was faster on a shared 2-core machine) plus
    ``workers`` rendering processes. ``storage``: ``"fp32"``, ``"fp16"``, or ``"auto"``
    (fp16 when its held-out zero-shot UARs are within 0.5 points of fp32's).
    ``progress``: True prints each log row to stderr, a callable receives it.
    """
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got {steps} and {batch_size}")
    if not 1 <= threads <= 2:
        raise ValueError(f"threads must be 1 or 2, got {threads}")
    if not 0 <= apex_frames <= frames_per_clip:
        raise ValueError(f"apex_frames must be in 0..frames_per_clip, got {apex_frames}")
    if storage not in ("auto", "fp16", "fp32"):
        raise ValueError(f"storage must be auto, fp16 or fp32, got {storage!r}")
    args = {"model_name": model_name, "steps": steps, "batch_size": batch_size, "seed": seed, "lr": lr,
            "warmup": warmup, "weight_decay": weight_decay, "n_identities": n_identities,
            "frames_per_clip": frames_per_clip, "apex_frames": apex_frames, "threads": threads, "workers": workers, "storage": storage,
            "eval_every": eval_every,
            "eval_clips_per_class": eval_clips_per_class, "eval_frames": eval_frames}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_path.with_suffix(".json"), out_path.with_suffix(".curves.csv")
    report = progress if callable(progress) else (
        (lambda row: print(" ".join(f"{k}={v}" for k, v in row.items() if v != ""), file=sys.stderr, flush=True))
        if progress else (lambda row: None))

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(out_path, json_path, csv_path, args, report, log_every)
    finally:
        torch.set_num_threads(previous_threads)


def _train(out_path: Path, json_path: Path, csv_path: Path, args: dict[str, Any],
           report: Callable[[dict[str, Any]], None], log_every: int) -> dict[str, Any]:
    import open_clip

    from dferbench_plugins.synthetic.render import AU_KEYS
    from dferbench import clip_input_size, create_clip

    a = argparse.Namespace(**args)
    model_name, steps, batch_size, seed, lr, warmup = a.model_name, a.steps, a.batch_size, a.seed, a.lr, a.warmup
    threads, storage, eval_every = a.threads, a.storage, a.eval_every
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, tokenizer = create_clip(model_name, None)
    size = clip_input_size(model)
    embed_dim = model.text_projection.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        head = nn.Linear(embed_dim, len(AU_KEYS))
    model.train()
    opt = torch.optim.AdamW(_param_groups(model, head, a.weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, warmup, steps))
    heldout = heldout_set(seed, size, a.eval_clips_per_class, a.eval_frames)

    gen_seed, _ = pretrain_generator_seeds(seed)
    data = _PairBatches(gen_seed, batch_size, a.n_identities, a.frames_per_clip, a.apex_frames, size, steps)
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=a.workers,
                                         prefetch_factor=2 if a.workers else None,
                                         persistent_workers=False)
    fields = ["step", "elapsed_s", "lr", "logit_scale", "loss", "loss_clip", "loss_img_bce", "loss_txt_bce"]
    csv_file = open(csv_path, "w", newline="", encoding="utf-8")  # written as it goes: survives a kill
    writer = csv.DictWriter(csv_file, fieldnames=fields + list(METRIC_NAMES), restval="")
    writer.writeheader()
    window: list[torch.Tensor] = []
    head_scale = math.sqrt(embed_dim)  # unit-norm embeddings -> unit-scale logits at init
    metrics: dict[str, float] = {}
    for step, (images, texts, targets) in enumerate(loader):
        tokens = tokenizer(texts)
        img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(encode_text_trimmed(model, tokens), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        target = torch.arange(len(img))
        loss_clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        loss_img = F.binary_cross_entropy_with_logits(head(img * head_scale), targets)
        loss_txt = F.binary_cross_entropy_with_logits(head(txt * head_scale), targets)
        loss = loss_clip + loss_img + loss_txt
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, _MAX_LOGIT_SCALE)
        window.append(torch.stack([loss.detach(), loss_clip.detach(), loss_img.detach(), loss_txt.detach()]))
        done = step + 1
        is_eval = done % eval_every == 0 or done == steps
        if done % log_every == 0 or is_eval:
            mean = torch.stack(window).mean(dim=0).tolist()
            window.clear()
            row: dict[str, Any] = {"step": done, "elapsed_s": round(time.perf_counter() - started, 1),
                                   "lr": f"{sched.get_last_lr()[0]:.3g}",
                                   "logit_scale": round(float(model.logit_scale.detach().exp()), 2),
                                   **{k: round(v, 4) for k, v in zip(fields[4:], mean)}}
            if is_eval:
                metrics = evaluate(model, tokenizer, heldout)
                row.update({k: round(v, 2) for k, v in metrics.items()})
            writer.writerow(row)
            csv_file.flush()
            report(row)
    csv_file.close()
    wall = time.perf_counter() - started

    model.eval()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    fp16_metrics = _metrics_with(model, state, torch.float16, tokenizer, heldout)
    zs_keys = [k for k in metrics if k.startswith("zs")]
    max_delta = max((abs(fp16_metrics[k] - metrics[k]) for k in zs_keys), default=0.0)
    use_fp16 = storage == "fp16" or (storage == "auto" and max_delta <= 0.5)
    save_weights(state, out_path, fp16=use_fp16)

    info = {
        "model": model_name,
        "model_config": open_clip.get_model_config(model_name),
        "weights": out_path.name,
        "sha256": sha256_file(out_path),
        "size_bytes": out_path.stat().st_size,
        "storage_dtype": "float16" if use_fp16 else "float32",
        "recipe": {**args, "optimizer": "AdamW(betas=(0.9, 0.98), eps=1e-6)",
                   "schedule": f"linear warm-up {warmup} steps, then cosine to 0",
                   "logit_scale_max": 100.0,
                   "loss": "clip + bce(head(image)) + bce(head(caption)); head: one shared Linear "
                           f"{embed_dim}->{len(AU_KEYS)} on unit embeddings x sqrt({embed_dim})",
                   "head_targets": list(AU_KEYS),
                   "data": f"{a.frames_per_clip} frames of each fresh clip: {a.apex_frames} at its apex, the "
                           "others at independent uniformly random times; class uniform over the 11 MAFW classes; identity uniform over n_identities; "
                           "'none' augmentation",
                   "identities": f"generator seed PRETRAIN_SEED_BASE + 2*seed = {gen_seed} (training), "
                                 f"+1 (held-out); PRETRAIN_SEED_BASE = 2**40, disjoint from benchmark seeds",
                   "input": f"{size}x{size} rendered frames, CLIP mean/std normalised"},
        "steps": steps,
        "wall_time_s": round(wall, 1),
        "final_metrics": {k: round(v, 2) for k, v in metrics.items()},
        "final_metrics_fp16": {k: round(v, 2) for k, v in fp16_metrics.items()},
        "heldout": {"clips_per_class": a.eval_clips_per_class, "frames_per_clip": a.eval_frames, "classes": 11,
                    "note": "held-out pre-training identities, not benchmark clips"},
        "rebuild_command": _rebuild_command(out_path, args, _DEFAULTS),
        "reproducibility": "every batch is a pure function of (seed, step) and init follows the seed; "
                           f"rebuilding with the same arguments on torch {torch.__version__}, the same CPU "
                           f"and threads={threads} reproduces sha256 bit for bit",
        "environment": {"torch": torch.__version__, "open_clip": open_clip.__version__,
                        "numpy": np.__version__, "python": platform.python_version(),
                        "machine": platform.machine()},
    }
    json_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _metrics_with(model: nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype, tokenizer: Any,
                  heldout: dict[str, Any]) -> dict[str, float]:
    """Held-out metrics of ``model`` with its weights round-tripped through ``dtype``."""
    model.load_state_dict({k: v.to(dtype).to(v.dtype) if v.is_floating_point() else v for k, v in state.items()})
    try:
        return evaluate(model, tokenizer, heldout)
    finally:
        model.load_state_dict(state)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m dferbench_plugins.synthetic.pretrain --steps N --out PATH [...]``."""
    p = argparse.ArgumentParser(prog="python -m dferbench_plugins.synthetic.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS, help="weights file to write (.safetensors)")
    p.add_argument("--steps", type=int, required=True)
    for key, value in _DEFAULTS.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--quiet", action="store_true", help="do not print learning-curve rows")
    ns = vars(p.parse_args(argv))
    out, quiet = ns.pop("out"), ns.pop("quiet")
    info = pretrain_clip(out, progress=not quiet, **ns)
    print(json.dumps({k: info[k] for k in ("weights", "sha256", "storage_dtype", "wall_time_s", "final_metrics")},
                     indent=2))
    return info


if __name__ == "__main__":
    main()
