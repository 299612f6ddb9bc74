"""The device-side (``gpu``) and the authors' (``reference``) pipelines against the CPU pipeline.

The ``gpu`` pipeline runs with ``device="cpu"`` here (torchvision's CPU JPEG decoder, the
same torch ops): it must produce the CPU pipeline's clips to within one grey level, with
the same sampled frames and augmentation parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dferbench.tools.bench_data import write_frame_folders
from dferbench.data import gpu
from dferbench.data.loader import ClipSet
from dferbench.data.readers import FrameFolderReader
from dferbench.data.records import ClipRecord
from dferbench_plugins.synthetic.render import SyntheticReader, make_synthetic_dataset
from dferbench.errors import DferbenchError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_frame_folders(tmp_path_factory.mktemp("frames"), 5, 20, 80, processes=1)


def _epoch(clips: ClipSet, train: bool) -> list[torch.Tensor]:
    return [v for v, *_ in clips.batches(train=train, batch_size=2, seed=4, drop_last=False).epoch(1)]


@pytest.mark.parametrize("augmentation", ["dfew", "ferv39k", "mafw"])
@pytest.mark.parametrize("normalize", ["none", "clip"])
def test_gpu_and_reference_pipelines_match_the_cpu_pipeline(folders, augmentation, normalize):
    out = {}
    for pipeline in ("cpu", "gpu", "reference"):
        clips = ClipSet("b", folders, FrameFolderReader(), num_frames=8, image_size=48, normalize=normalize,
                        augmentation=augmentation, pipeline=pipeline)
        out[pipeline] = (_epoch(clips, True), _epoch(clips, False))
    grey = 1 / 255 if normalize == "none" else 1 / 255 / 0.2613  # one grey level after CLIP's std
    for pipeline in ("gpu", "reference"):
        for a, b in zip(out["cpu"], out[pipeline]):
            d = torch.cat([(x - y).abs().flatten() for x, y in zip(a, b)])
            assert d.max() <= grey + 1e-6, pipeline
            assert d.mean() <= 0.25 * grey, pipeline  # rounding differences only


def test_gpu_pipeline_decodes_only_the_distinct_sampled_frames(folders):
    from dferbench.data.transforms import build_clip_transform

    transform = build_clip_transform("dfew", 48, train=True)
    record = ClipRecord("short", folders[0].source, 5, 0)  # 5 frames for 8 positions: edge padding
    raw = gpu.read_raw_clip(FrameFolderReader(), record, [0, 1, 2, 3, 4, 4, 4, 4], transform,
                            np.random.default_rng(0))
    assert raw.jpegs is not None and len(raw.jpegs) == 5
    assert raw.order.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    video = gpu.finish_batch(gpu.RawBatch([raw]), transform, "cpu")
    assert video.shape == (1, 8, 3, 48, 48) and video.dtype == torch.float32
    assert torch.equal(video[0, 4], video[0, 7])


def test_non_jpeg_sources_are_decoded_by_workers_and_augmented_on_the_device():
    ds = make_synthetic_dataset(num_clips=35)
    records = ds.split(1, "test")
    out = {}
    for pipeline in ("cpu", "gpu"):
        clips = ClipSet("s", records, SyntheticReader(64), num_frames=4, image_size=32, augmentation="dfew",
                        pipeline=pipeline)
        out[pipeline] = _epoch(clips, True)
    for a, b in zip(out["cpu"], out["gpu"]):
        assert (a - b).abs().max() <= 1 / 255 + 1e-6


def test_png_frames_fall_back_to_worker_decoding(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    record = ClipRecord("png", str(folder), 6, 1)
    clips = {p: ClipSet("p", [record], FrameFolderReader(), num_frames=4, image_size=32, augmentation="ferv39k",
                        pipeline=p) for p in ("cpu", "gpu")}
    a, b = (_epoch(clips[p], True)[0] for p in ("cpu", "gpu"))
    assert (a - b).abs().max() <= 1 / 255 + 1e-6


def test_reference_pipeline_needs_frame_folders():
    ds = make_synthetic_dataset(num_clips=35)
    clips = ClipSet("s", ds.split(1, "test"), ds.reader, num_frames=4, image_size=32, pipeline="reference")
    with pytest.raises(DferbenchError, match="reference pipeline reads frame folders only"):
        _epoch(clips, False)


def test_gpu_decode_probe_on_cpu():
    assert gpu.decode_available("cpu")  # torchvision's CPU decoder; on CUDA the same probe runs nvJPEG
