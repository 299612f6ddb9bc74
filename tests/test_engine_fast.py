"""The fast engine keeps the CPU arithmetic of the plain loop; its speed features are wired."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import MeanBrightness, ToyReader
from dferbench.run import config as cfg
from dferbench.run import engine
from dferbench.data.loader import BatchPlan, ClipSet, resolve_pipeline, resolve_workers, shuffled_order
from dferbench.data.records import ClipRecord
from dferbench.errors import DferbenchError
from dferbench.plugin.method import Monitor
from dferbench.run.progress import progress


def toy_clips(n: int = 21, **kw) -> ClipSet:
    records = [ClipRecord(f"clip-{i}", f"toy:{i}", 5 + i % 20, i % 3) for i in range(n)]
    return ClipSet("toy", records, ToyReader(), num_frames=4, image_size=8, **kw)


@pytest.mark.parametrize("n,batch,seed,epoch", [(21, 8, 1, 0), (21, 8, 1, 3), (40, 16, 7, 2), (5, 2, 0, 1)])
def test_training_order_is_the_one_earlier_versions_used(n, batch, seed, epoch):
    # Earlier engines iterated a shuffled DataLoader through a tqdm.auto progress bar
    # (which creates an extra loader iterator): that order must not change, or every
    # earlier CPU result would stop reproducing.
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    legacy = DataLoader(list(range(n)), batch_size=batch, shuffle=True, drop_last=True, generator=g)
    old = [b.tolist() for b in progress(legacy, desc="x", total=len(legacy), enabled=False)]
    plan = BatchPlan(n, batch, train=True, seed=seed, drop_last=True)
    plan.set_epoch(epoch)
    assert [b.tolist() for b, _ in plan.plan()] == old
    assert sorted(shuffled_order(n, seed, epoch).tolist()) == list(range(n))


def test_batches_equal_the_plain_loader_clip_for_clip():
    clips = toy_clips(augmentation="dfew")
    plain = list(clips.loader(train=True, batch_size=4, seed=3, epoch=2, drop_last=True))
    fast = list(clips.batches(train=True, batch_size=4, seed=3, drop_last=True).epoch(2))
    by_index = {int(i): v for video, _, index in plain for i, v in zip(index, video)}
    compared = 0
    for video, labels, index, global_size in fast:
        assert global_size == len(index) == 4
        for i, v in zip(index.tolist(), video):
            if i in by_index:  # same clip, same (seed, epoch): the same frames and augmentation
                assert torch.equal(v, by_index[i])
                compared += 1
    assert compared >= 10


def test_train_module_matches_a_plain_fp32_loop_step_for_step():
    clips = toy_clips()
    torch.manual_seed(0)
    reference = MeanBrightness(3)
    module = copy.deepcopy(reference)
    # The loop earlier versions ran, written out.
    opt = torch.optim.SGD(reference.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for epoch in range(2):
        g = torch.Generator().manual_seed(5 * 100_003 + epoch)
        data = clips.loader(train=True, batch_size=8, seed=5, epoch=epoch, drop_last=True)
        data = DataLoader(data.dataset, batch_size=8, shuffle=True, drop_last=True, generator=g)
        total, n = 0.0, 0
        for video, labels, _ in progress(data, desc="x", total=len(data), enabled=False):
            loss = torch.nn.functional.cross_entropy(reference(video).float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(labels)
            n += len(labels)
        losses.append(total / n)
    monitor = Monitor("last_epoch")
    info = engine.train_module(module, torch.optim.SGD(module.parameters(), lr=0.5, momentum=0.9), None, clips,
                               monitor, epochs=2, batch_size=8, device="cpu", seed=5)
    assert [row["train_loss"] for row in monitor.history] == losses  # exactly, not approximately
    for a, b in zip(reference.parameters(), module.parameters()):
        assert torch.equal(a, b)
    assert info["precision"] == "fp32" and info["data_pipeline"] == "cpu" and info["world_size"] == 1


def test_compile_setting_is_wired(monkeypatch):
    monkeypatch.setenv("DFERBENCH_COMPILE_BACKEND", "eager")  # no C++ toolchain needed
    clips = toy_clips()
    torch.manual_seed(0)
    a = MeanBrightness(3)
    b = copy.deepcopy(a)
    for module, compile in ((a, False), (b, True)):
        info = engine.train_module(module, torch.optim.SGD(module.parameters(), lr=0.5), None, clips,
                                   Monitor("last_epoch"), epochs=1, batch_size=8, device="cpu", seed=1, compile=compile)
        assert info["compile"] is compile
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_precision_and_pipeline_are_checked_and_recorded():
    assert engine.effective_precision("cpu", "auto") == "fp32"
    assert engine.effective_precision("cuda", "auto") == "bf16"
    assert engine.effective_precision("cuda:1", "fp32") == "fp32"
    with pytest.raises(DferbenchError, match="train.precision must be one of auto, bf16, fp32"):
        engine.autocast("cpu", "fp16")
    assert resolve_pipeline("auto", "cpu", 0) == "cpu"
    with pytest.raises(DferbenchError, match="data.pipeline must be one of"):
        resolve_pipeline("nvdali", "cpu", 0)
    base = copy.deepcopy(cfg.CORE_DEFAULTS)
    with pytest.raises(DferbenchError, match="data.pipeline"):
        cfg.validate(cfg.apply_overrides(base, ["data.pipeline=fastest"]))
    with pytest.raises(DferbenchError, match="train.precision"):
        cfg.validate(cfg.apply_overrides(base, ["train.precision=fp16"]))
    with pytest.raises(DferbenchError, match="data.prefetch must be an integer >= -1, got -3"):
        cfg.validate(cfg.apply_overrides(base, ["data.prefetch=-3"]))
    # execution settings, like the device: same unit, same result file
    assert cfg.config_hash(base) == cfg.config_hash(cfg.apply_overrides(
        base, ["data.pipeline=gpu", "train.compile=true", "data.workers=6", "data.prefetch=0"]))


def test_auto_precision_is_fp32_on_gpus_without_bf16_arithmetic(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100
    assert engine.effective_precision("cuda", "auto") == "fp32"
    assert isinstance(engine.autocast("cuda", "auto"), contextlib.nullcontext)
    assert engine.effective_precision("cuda", "bf16") == "bf16"  # asked for explicitly
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # A100
    assert engine.effective_precision("cuda:1", "auto") == "bf16"


def test_prefetch_setting_reaches_the_batches():
    assert toy_clips().batches(train=True, batch_size=4).prefetch == 0  # auto on the CPU
    assert toy_clips(prefetch=3).batches(train=True, batch_size=4).prefetch == 3
    assert toy_clips(prefetch=3).batches(train=True, batch_size=4, prefetch=1).prefetch == 1
    assert toy_clips(pipeline="reference").batches(train=True, batch_size=4, device="cuda").prefetch == 0


def test_auto_pipeline_decodes_on_the_gpu_only_when_workers_are_few(monkeypatch):
    import dferbench.data.gpu as gpu

    monkeypatch.setattr(gpu, "decode_available", lambda device: True)
    assert resolve_pipeline("auto", "cuda", 15) == "cpu"
    assert resolve_pipeline("auto", "cuda:1", 4) == "cpu"
    assert resolve_pipeline("auto", "cuda", 3) == "gpu"
    assert resolve_pipeline("auto", "cpu", 0) == "cpu"
    assert resolve_pipeline("gpu", "cuda", 15) == "gpu"
    assert toy_clips(workers=2).batches(train=True, batch_size=4, device="cuda").pipeline == "gpu"
    assert toy_clips(workers=6).batches(train=True, batch_size=4, device="cuda").pipeline == "cpu"
    monkeypatch.setattr(gpu, "decode_available", lambda device: False)  # e.g. no nvJPEG in torchvision
    assert resolve_pipeline("auto", "cuda", 0) == "cpu"


def test_workers_auto():
    assert resolve_workers(-1, "cpu") == 0
    assert resolve_workers(3, "cpu") == 3
    assert 1 <= resolve_workers(-1, "cuda") <= 16


def test_optimizer_is_fused_only_on_cuda(tiny_dferclip):
    from dferbench_plugins.dferclip.network import build_optimizer

    opt, _ = build_optimizer(tiny_dferclip)
    assert not opt.defaults.get("fused")  # CPU: PyTorch's default implementation, unchanged numbers
    opt, _ = build_optimizer(tiny_dferclip, fused=False)
    assert not opt.defaults.get("fused")


def test_temporal_attention_sdpa_agrees_with_the_explicit_path():
    from dferbench.models.temporal import TemporalAttention, TemporalTransformerCls

    torch.manual_seed(0)
    model = TemporalTransformerCls(num_frames=16, width=128, depth=2)
    x = torch.randn(3, 16, 128)
    explicit = model(x)
    try:
        TemporalAttention.use_sdpa = True
        fused = model(x)
    finally:
        TemporalAttention.use_sdpa = None
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    assert torch.equal(model(x), explicit)  # the CPU default is the explicit path, bit for bit


@pytest.fixture(scope="module")
def tiny_dferclip():
    from dferbench import api

    torch.manual_seed(0)
    return api.build_model("dferclip", class_texts=["a", "b", "c"], clip_model="dferbench-test-tiny", num_frames=4)


def test_predict_module_keeps_clip_order():
    clips = toy_clips(n=11)
    torch.manual_seed(0)
    module = MeanBrightness(3)
    logits = engine.predict_module(module, clips, batch_size=4, device="cpu")
    plain = np.concatenate([module(v).detach().numpy() for v, _, _ in clips.loader(train=False, batch_size=4)])
    np.testing.assert_array_equal(logits, plain)


def test_persistent_workers_see_each_epoch():
    clips = toy_clips(augmentation="dfew")
    inline = clips.batches(train=True, batch_size=4, seed=2, drop_last=True)
    clips.workers = 2
    workers = clips.batches(train=True, batch_size=4, seed=2, drop_last=True)
    assert workers.workers == 2 and workers.loader.persistent_workers
    for epoch in (0, 1, 2):  # the same worker processes serve every epoch
        for (a, la, ia, _), (b, lb, ib, _) in zip(inline.epoch(epoch), workers.epoch(epoch)):
            assert torch.equal(ia, ib) and torch.equal(a, b)
