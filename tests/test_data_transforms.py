"""Clip transforms: the official per-dataset augmentations, one parameter set per clip."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F1
from PIL import Image, ImageEnhance

from dferbench.data.reference import transform_frame
from dferbench.data.transforms import (
    AUGMENTATIONS,
    CLIP_MEAN,
    CLIP_STD,
    ClipParams,
    build_clip_transform,
    rotate_nearest,
    sample_crop,
)


def clip(t: int = 4, h: int = 40, w: int = 52, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 4, y * 5, (x + y) * 2], -1) % 256
    return np.stack([np.clip(base + rng.integers(-20, 20, base.shape), 0, 255) for _ in range(t)]).astype(np.uint8)


def pil_reference(frames: np.ndarray, p: ClipParams, size: int) -> torch.Tensor:
    """The official per-frame PIL pipeline (torchvision v1 ops) with the same parameters."""
    return torch.stack([F1.to_tensor(transform_frame(Image.fromarray(f), p, size)) for f in frames])


@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
@pytest.mark.parametrize("train", [True, False])
def test_shape_dtype_range(augmentation, train):
    tr = build_clip_transform(augmentation, 24, train=train)
    out = tr(clip(), np.random.default_rng(0))
    assert out.shape == (4, 3, 24, 24) and out.dtype == torch.float32 and out.is_contiguous()
    assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("augmentation", ["dfew", "ferv39k", "mafw"])
def test_matches_per_frame_pil_pipeline(augmentation):
    frames = clip(t=3, h=48, w=48)
    for size in (48, 24):
        tr = build_clip_transform(augmentation, size)
        for seed in range(12):
            p = tr.sample_params(48, 48, np.random.default_rng(seed))
            diff = (tr.apply(frames, p) - pil_reference(frames, p, size)).abs().max().item()
            assert diff <= 1.0 / 255 + 1e-6, (seed, p, diff)


def test_test_mode_is_plain_resize_and_ignores_rng():
    frames = clip()
    tr = build_clip_transform("dfew", 20, train=False)
    a = tr(frames, np.random.default_rng(1))
    b = tr(frames, np.random.default_rng(2))
    assert torch.equal(a, b)
    assert tr.sample_params(40, 52, np.random.default_rng(0)) == ClipParams()
    ref = pil_reference(frames, ClipParams(), 20)
    assert (a - ref).abs().max() <= 1.0 / 255 + 1e-6


def test_same_parameters_on_every_frame():
    one = clip(t=1)
    frames = np.repeat(one, 5, axis=0)  # five identical frames
    for augmentation in ("dfew", "ferv39k", "mafw"):
        tr = build_clip_transform(augmentation, 16)
        flips = set()
        for seed in range(20):
            out = tr(frames, np.random.default_rng(seed))
            assert all(torch.equal(out[0], out[i]) for i in range(1, 5)), (augmentation, seed)
            flips.add(tr.sample_params(40, 52, np.random.default_rng(seed)).flip)
        assert flips == {True, False}


def test_flip_applies_to_all_frames_or_none():
    frames = clip(t=3)
    tr = build_clip_transform("mafw", 24)
    p = tr.sample_params(40, 52, np.random.default_rng(3))
    flipped = tr.apply(frames, ClipParams(crop=p.crop, flip=True))
    plain = tr.apply(frames, ClipParams(crop=p.crop, flip=False))
    assert torch.equal(flipped, plain.flip(-1))


def test_deterministic_given_rng_and_independent_of_torch_rng():
    frames = clip()
    tr = build_clip_transform("ferv39k", 24)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = tr(frames, np.random.default_rng(7))
    torch.manual_seed(123)
    b = tr(frames, np.random.default_rng(7))
    assert torch.equal(a, b)
    torch.manual_seed(0)
    tr(frames, np.random.default_rng(8))
    assert torch.equal(torch.get_rng_state(), state)  # drew nothing from torch
    assert not torch.equal(a, tr(frames, np.random.default_rng(9)))


def test_picklable_and_same_result_after_pickling():
    tr = build_clip_transform("dfew", 24, normalize="clip")
    copy = pickle.loads(pickle.dumps(tr))
    assert copy == tr
    frames = clip()
    assert torch.equal(tr(frames, np.random.default_rng(5)), copy(frames, np.random.default_rng(5)))


def test_clip_normalisation():
    frames = clip()
    raw = build_clip_transform("mafw", 24)(frames, np.random.default_rng(0))
    norm = build_clip_transform("mafw", 24, normalize="clip")(frames, np.random.default_rng(0))
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(norm, (raw - mean) / std, atol=1e-6)


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="dfew, ferv39k, mafw, none"):
        build_clip_transform("kinetics", 224)
    with pytest.raises(ValueError, match="none, clip"):
        build_clip_transform("dfew", 224, normalize="imagenet")


def test_bad_input_shape_is_explained():
    tr = build_clip_transform("none", 8)
    with pytest.raises(ValueError, match=r"\[T,H,W,3\]"):
        tr(np.zeros((4, 8, 8), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        tr(np.zeros((1, 8, 8, 3), np.float32), np.random.default_rng(0))


def test_parameter_ranges_follow_the_official_sampler():
    tr = build_clip_transform("dfew", 224)
    for seed in range(200):
        p = tr.sample_params(224, 224, np.random.default_rng(seed))
        assert 0.5 <= p.brightness <= 1.5
        top, left, h, w = p.crop
        assert 0 <= top <= 224 - h and 0 <= left <= 224 - w
        assert 0.08 * 224 * 224 * 0.95 <= h * w <= 224 * 224
        assert 3 / 4 - 0.02 <= min(h / w, w / h) and max(h / w, w / h) <= 4 / 3 + 0.02
    angles = [build_clip_transform("ferv39k", 224).sample_params(224, 224, np.random.default_rng(s)).angle
              for s in range(200)]
    assert -4 <= min(angles) < -3 and 3 < max(angles) <= 4


def test_crop_fallback_is_in_bounds():
    # A 300x20 strip makes most attempts fail; the fallback must still fit the image.
    for seed in range(50):
        top, left, h, w = sample_crop(20, 300, 16, np.random.default_rng(seed))
        assert 0 <= top and top + h <= 20 and 0 <= left and left + w <= 300


def test_rotation_is_bit_exact_with_pil():
    frames = clip(t=2, h=37, w=50)
    for angle in (-3.7, -0.4, 1.9, 4.0):
        ours = rotate_nearest(torch.from_numpy(frames).permute(0, 3, 1, 2), angle).permute(0, 2, 3, 1)
        ref = np.stack([np.asarray(Image.fromarray(f).rotate(angle)) for f in frames])
        assert np.array_equal(ours.numpy(), ref), angle


def test_brightness_is_bit_exact_with_pil():
    frames = clip(t=2, h=16, w=16)
    tr = build_clip_transform("dfew", 16)
    for factor in (0.5, 0.83, 1.21, 1.5):
        ours = (tr.apply(frames, ClipParams(brightness=factor)) * 255).round().to(torch.uint8)
        ref = np.stack([np.asarray(ImageEnhance.Brightness(Image.fromarray(f)).enhance(factor)) for f in frames])
        assert np.array_equal(ours.permute(0, 2, 3, 1).numpy(), ref), factor
