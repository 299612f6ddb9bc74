"""Memory and time of one CoOp / Co-CoOp training step, by batch size.

CoOp runs the text encoder on the C class prompts once per step whatever the batch; Co-CoOp
builds B x C prompts (one set per clip) and runs them as one batch, so its activation
memory grows linearly with B. Both train on cached video features here (the frozen image
encoder is outside the graph either way). Weights are random: memory and time do not
depend on their values. Run ``dferbench bench coop-memory --device cuda`` for the table
(the baselines plugin registers that command in the ``bench`` group).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import click

from dferbench import DFEW_CLASSES


def coop_memory(*, clip_model: str = "ViT-B-32-quickgelu", batch_sizes: Sequence[int] = (1, 8, 32),
                device: str = "cpu", precision: str = "auto", truncate: Sequence[bool] = (True, False),
                repeats: int = 5) -> list[dict[str, Any]]:
    """One row per (method, truncate, batch): prompts encoded per step, autograd-saved
    activation MiB, CUDA peak MiB above the weights (None on the CPU), median step ms."""
    import torch
    import torch.nn.functional as F

    from dferbench import autocast, create_clip
    from dferbench_plugins.baselines.coop import CoCoOp, CoOp, saved_activation_bytes

    clip, tokenizer = create_clip(clip_model, None, device=device)
    texts = [f"{c}." for c in DFEW_CLASSES]
    rows = []
    for cut in truncate:
        nets = {"coop": CoOp(clip, texts, tokenizer=tokenizer, n_ctx=16, truncate=cut),
                "cocoop": CoCoOp(clip, texts, tokenizer=tokenizer, truncate=cut)}
        for name, net in nets.items():
            net.to(device).train()
            for b in batch_sizes:
                x = torch.randn(b, clip.visual.output_dim, device=device)
                y = torch.arange(b, device=device) % len(texts)
                times = []
                for i in range(repeats + 1):  # the first step (library workspaces, autocast casts) is not timed
                    if i == 1:
                        net.zero_grad(set_to_none=True)
                        with autocast(device, precision):
                            mem = saved_activation_bytes(net, x, y)
                    start = time.perf_counter()
                    with autocast(device, precision):
                        loss = F.cross_entropy(net(x).float(), y)
                    loss.backward()
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    if i:
                        times.append(1000 * (time.perf_counter() - start))
                net.zero_grad(set_to_none=True)
                peak = mem["cuda_peak_bytes"]
                rows.append({"method": name, "truncate": cut, "batch": b,
                             "prompts_per_step": b * len(texts) if name == "cocoop" else len(texts),
                             "text_tokens": net.n_tokens, "saved_MiB": round(mem["saved_bytes"] / 2**20, 2),
                             "cuda_peak_MiB": None if peak is None else round(peak / 2**20, 1),
                             "step_ms": round(statistics.median(times), 2)})
    return rows


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,8,32, got {text!r}") from None


@click.command(name="coop-memory")
@click.option("--clip-model", default="ViT-B-32-quickgelu", show_default=True, help="open_clip architecture (random weights).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--batch-sizes", default="1,8,32", show_default=True, help="Comma-separated batch sizes.")
def coop_memory_command(clip_model, device, precision, batch_sizes) -> None:
    """Memory and step time of one CoOp and one Co-CoOp training step, side by side."""
    from tabulate import tabulate

    rows = coop_memory(clip_model=clip_model, batch_sizes=_ints(batch_sizes), device=device, precision=precision)
    click.echo(tabulate(rows, headers="keys", tablefmt="pipe"))
