"""Under bf16 autocast (CUDA's default) every trained model still returns fp32 logits.

bf16 logits of 20-30 sit on a grid of 0.125: ties at the argmax, which favour the lowest
class index. The CPU has a bf16 autocast too, so this is checked here.
"""

from __future__ import annotations

import pytest
import torch

from dferbench.models.clip import clip_input_size, create_clip
from dferbench_plugins.baselines.coop import CoCoOp, CoOp
from dferbench_plugins.dferclip.network import DFERCLIP
from dferbench_plugins.baselines.finetune import FineTuneNet

CLASSES = ["happiness.", "sadness.", "neutral.", "anger.", "surprise.", "disgust.", "fear."]


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_clip("dferbench-test-tiny", None)


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def video_for(model, batch=3, frames=4):
    size = clip_input_size(model.visual)
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(1))


def assert_full_precision(logits: torch.Tensor) -> None:
    assert logits.dtype == torch.float32
    assert not torch.equal(logits, logits.to(torch.bfloat16).float())  # not on bf16's grid


def test_dferclip_logits_are_fp32_under_bf16_autocast(clip):
    model, tok = clip
    net = DFERCLIP(model, CLASSES, tokenizer=tok, num_frames=4).eval()
    video = video_for(model)
    with torch.no_grad(), bf16():
        logits = net(video)
        v, t = net.encode_video(video), net.encode_text()
        rounded = v @ t.t() / net.temperature
    assert_full_precision(logits)
    assert rounded.dtype == torch.bfloat16  # what the matmul gives under autocast
    assert torch.equal(logits, v.float() @ t.float().t() / net.temperature)


@pytest.mark.parametrize("kind", [CoOp, CoCoOp])
def test_prompt_learning_logits_are_fp32_under_bf16_autocast(clip, kind):
    model, tok = clip
    net = kind(model, CLASSES, tokenizer=tok).eval()
    frames = torch.randn(3, 4, model.visual.output_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), bf16():
        logits = net(frames)
        if kind is CoOp:  # (Co-CoOp's text features depend on the clip)
            v, t = net.video_features(frames), net.text_features()
    assert_full_precision(logits)
    if kind is CoOp:
        assert torch.equal(logits, net.logit_scale * v @ t.t())


def test_finetune_head_is_fp32_under_bf16_autocast(clip):
    model, _ = clip
    net = FineTuneNet(model.visual, 7, temporal_depth=1, num_frames=4).eval()
    video = video_for(model)
    with torch.no_grad(), bf16():
        logits = net(video)
        b, t = video.shape[:2]
        features = net.temporal_net(net.image_encoder(video.flatten(0, 1)).reshape(b, t, -1))
    assert_full_precision(logits)
    assert torch.equal(logits, net.head(features.float()))
