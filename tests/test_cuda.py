"""The CUDA-only code paths: device prefetching on a side stream, nvJPEG decoding, bf16
training. Run where torch sees a GPU (``scripts/gpu_check.sh`` runs them first)."""

from __future__ import annotations

import pytest
import torch

from conftest import MeanBrightness
from dferbench.run import engine
from dferbench.tools.bench_data import write_frame_folders
from dferbench.data.loader import ClipSet
from dferbench.data.readers import FrameFolderReader
from dferbench.plugin.method import Monitor

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_frame_folders(tmp_path_factory.mktemp("frames"), 24, 20, 96, processes=1)


def _clips(folders, pipeline: str, workers: int = 0) -> ClipSet:
    return ClipSet("b", folders, FrameFolderReader(), num_frames=8, image_size=64, normalize="clip",
                   augmentation="ferv39k", pipeline=pipeline, workers=workers)


def _epoch(clips: ClipSet, device: str, prefetch: int) -> list[tuple]:
    stream = clips.batches(train=True, batch_size=4, device=device, seed=2, drop_last=True, prefetch=prefetch)
    return [(v.cpu(), l.cpu(), i) for v, l, i, _ in stream.epoch(1)]


@pytest.mark.parametrize("pipeline", ["cpu", "gpu"])
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_prefetching_on_a_side_stream_changes_nothing(folders, pipeline, device):
    inline = _epoch(_clips(folders, pipeline), device, prefetch=0)
    ahead = _epoch(_clips(folders, pipeline, workers=2), device, prefetch=3)
    assert len(inline) == len(ahead) == 6
    for (a, la, ia), (b, lb, ib) in zip(inline, ahead):
        assert torch.equal(ia, ib) and torch.equal(la, lb) and torch.equal(a, b)


def test_nvjpeg_pipeline_matches_the_cpu_pipeline(folders):
    cpu = _epoch(_clips(folders, "cpu"), "cpu", prefetch=0)
    gpu = _epoch(_clips(folders, "gpu"), "cuda", prefetch=2)
    grey = 1 / 255 / 0.2613
    for (a, _, _), (b, _, _) in zip(cpu, gpu):
        assert (a - b).abs().max() <= 3 * grey  # nvJPEG's IDCT/upsampling vs libjpeg-turbo
        assert (a - b).abs().mean() <= 0.5 * grey


def test_nvjpeg_waits_for_the_kernels_still_reading_the_last_batch(folders):
    # nvJPEG writes on a stream of its own: without a wait, the blocks the previous batch
    # freed could be overwritten while its queued kernels (held back here) still read them.
    stream = _clips(folders, "gpu").batches(train=True, batch_size=4, device="cuda", seed=2, drop_last=True,
                                            prefetch=0)
    stream.plan.set_epoch(1)
    raw = list(stream.loader)[:3]
    expected = []
    for batch in raw:
        expected.append(stream._to_device(batch)[0].cpu())
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        held_back = []
        for batch in raw:
            torch.cuda._sleep(200_000_000)  # about 0.1 s: this batch's kernels queue behind it
            held_back.append(stream._to_device(batch)[0])
    torch.cuda.synchronize()
    for a, b in zip(expected, held_back):
        assert torch.equal(a, b.cpu())


def test_bf16_training_on_cuda_records_what_ran(folders):
    clips = _clips(folders, "auto", workers=2)
    module = MeanBrightness(7)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    fit = engine.train_module(module, optimizer, None, clips, Monitor("last_epoch"), epochs=2, batch_size=4,
                              device="cuda", seed=1)
    assert fit["precision"] == "bf16" and fit["data_pipeline"] == "gpu" and fit["data_workers"] == 2
    logits = engine.predict_module(module, clips, batch_size=8, device="cuda")
    assert logits.shape == (len(clips), 7) and torch.isfinite(torch.from_numpy(logits)).all()
