"""The frozen-feature cache, proven by counting image-encoder calls; the cache benchmark."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from dferbench import api
from dferbench.plugin import manager as plugins
from dferbench.tools.bench_cache import benchmark_cache
from dferbench.data.loader import ClipSet
from dferbench.models import features

from test_baselines import TINY, one_thread  # noqa: F401  (one_thread: autouse fixture)


def calls_of(fn):
    before = features.encoder_calls
    out = fn()
    return out, features.encoder_calls - before


def zeroshot(tmp_path, *overrides, echo=lambda m: None, **kw):
    return api.run("zeroshot-clip", "synthetic", folds=[1], output=tmp_path, overrides=TINY + list(overrides),
                   echo=echo, **kw)


def test_prompt_variants_and_reruns_reuse_features(tmp_path):
    first, n = calls_of(lambda: zeroshot(tmp_path, "model.text=class-names"))
    assert n > 0
    for text in ("photo-of", "face-templates"):  # another text set: the same frames, 0 new calls
        other, n = calls_of(lambda: zeroshot(tmp_path, f"model.text={text}"))
        assert n == 0 and other[0]["run_name"].endswith(f"text={text}]")  # its own leaderboard row
    messages = []
    again, n = calls_of(lambda: zeroshot(tmp_path, "model.text=class-names", echo=messages.append))
    assert n == 0 and messages[0].startswith("skip") and again[0]["war"] == first[0]["war"]  # resumed
    rerun, n = calls_of(lambda: zeroshot(tmp_path, "model.text=class-names", skip_existing=False))
    assert n == 0 and rerun[0]["confusion"] == first[0]["confusion"]  # recomputed from cached features


@pytest.mark.parametrize("change", ["data.num_frames=2", "data.normalize=none", "protocol.seeds=[2]"])
def test_sampling_normalisation_and_weights_invalidate(tmp_path, change):
    zeroshot(tmp_path)
    # protocol.seeds=[2]: the random-init CLIP of seed 2 has other weights
    _, n = calls_of(lambda: zeroshot(tmp_path, change))
    assert n > 0


class MeanColour(nn.Module):
    """An 'image encoder' that takes any resolution: the mean colour, projected."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)

    def forward(self, frames):
        return self.proj(frames.mean(dim=(2, 3)))  # [N, 3, H, W] -> [N, 4]


def test_cache_key_covers_weights_sampling_resolution_and_normalisation(tmp_path):
    ds = plugins.get("dataset", "synthetic").build({"num_clips": 35, "generator_seed": 0, "render_size": 16})
    base = dict(num_frames=2, image_size=16, normalize="clip", workers=0)
    encoder = MeanColour()

    def encode(**changes):
        clips = ClipSet("synthetic", ds.split(1, "test"), ds.reader, **{**base, **changes})
        return calls_of(lambda: features.cached_frame_features(encoder, clips, cache_dir=tmp_path, batch_size=4,
                                                                 device="cpu"))

    cold, n = encode()
    assert n == 2 and cold.shape == (7, 2, 4)  # 7 test clips in batches of 4
    warm, n = encode()
    assert n == 0 and (warm == cold).all()
    for change in ({"num_frames": 3}, {"image_size": 8}, {"normalize": "none"}):
        assert encode(**change)[1] == 2, change
    with torch.no_grad():
        encoder.proj.bias += 1.0
    assert encode()[1] == 2  # new weights
    assert encode()[1] == 0


def test_benchmark_rows(tmp_path):
    rows = benchmark_cache(text_sets=("class-names", "photo-of"), folds=(1, 2), overrides=TINY, workdir=tmp_path)
    by_mode = {r["mode"]: r for r in rows}
    assert list(by_mode) == ["no cache", "cold cache", "warm cache"]
    per_fold = by_mode["cold cache"]["encoder_calls"] // 2
    assert by_mode["no cache"]["encoder_calls"] == 4 * per_fold > 0  # 2 text sets x 2 folds
    assert by_mode["warm cache"]["encoder_calls"] == 0
    assert all(r["units"] == 4 and r["seconds"] > 0 for r in rows) and by_mode["no cache"]["speedup"] == 1.0


def test_writers_of_the_same_file_at_once_do_not_collide(tmp_path):
    # the ranks of a torchrun job cache the same features at the same moment
    from dferbench.files import replacing

    path = tmp_path / "features.npy"
    with replacing(path) as first:
        with replacing(path) as second:
            second.write_text("second")
        first.write_text("first")
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["features.npy"]
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["features.npy"]


def test_fp64_features_are_float32_cached_apart_and_leave_the_encoder_as_it_was(tmp_path):
    ds = plugins.get("dataset", "synthetic").build({"num_clips": 35, "generator_seed": 0, "render_size": 16})
    clips = ClipSet("synthetic", ds.split(1, "test"), ds.reader, num_frames=2, image_size=16, normalize="clip",
                    workers=0)
    encoder = MeanColour()

    def encode(precision):
        return calls_of(lambda: features.cached_frame_features(encoder, clips, cache_dir=tmp_path, batch_size=4,
                                                                 device="cpu", precision=precision))

    single, _ = encode("fp32")
    double, n = encode("fp64")
    assert n == 2 and double.dtype == single.dtype == "float32"  # its own cache entry, stored as float32
    assert abs(double - single).max() < 1e-5
    assert encode("fp64")[1] == 0 and encode("fp32")[1] == 0
    assert all(p.dtype == torch.float32 for p in encoder.parameters())


# One process's features, on whatever torch code paths its environment selects.
FEATURES_SCRIPT = """
import sys
import numpy as np
import torch
from dferbench import ClipSet, create_clip
from dferbench.models.features import encode_frames
from dferbench.testing import build_dataset

torch.set_num_threads(1)
clip, _ = create_clip("dferbench-tiny", "dferbench-synthetic")  # shipped weights: random init differs by path
ds = build_dataset("synthetic", num_clips=35)
clips = ClipSet("synthetic", ds.split(1, "train"), ds.reader, num_frames=4, image_size=64, normalize="clip", workers=0)
np.save(sys.argv[2], encode_frames(clip.visual, clips, batch_size=16, device="cpu", precision=sys.argv[1]))
"""

# torch's baseline kernels, MKL's vendor-neutral path, oneDNN's oldest ISA: the other code
# paths this machine can take, standing in for another CPU's.
OTHER_CODE_PATHS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"}


def test_fp64_features_are_the_same_bits_on_other_cpu_code_paths(tmp_path):
    """What makes linear-probe's committed synthetic rows reproducible on other CPUs: fp32
    features differ in their last bits between these code paths, fp64 ones rounded to
    float32 do not."""
    outputs = []
    for name, extra in (("native", {}), ("other", OTHER_CODE_PATHS)):
        out = tmp_path / f"{name}.npy"
        env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
        subprocess.run([sys.executable, "-c", FEATURES_SCRIPT, "fp64", str(out)], env=env, check=True)
        outputs.append(np.load(out))
    assert outputs[0].shape[0] > 20 and np.array_equal(outputs[0], outputs[1])
