"""Zero-shot FaRL: FaRL-format files (written here) load into open_clip, bad files fail clearly."""

import argparse

import pytest
import torch

from dferbench import api
from dferbench.errors import DferbenchError
from dferbench.models.clip import create_clip
from dferbench_plugins.baselines.farl import FARL_FILE, MIM_PREFIXES, load_farl

from test_baselines import TINY, one_thread  # noqa: F401  (one_thread: autouse fixture)

ARCH = "dferbench-test-tiny"  # the real preset keeps ViT-B-16-quickgelu


def farl_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A FaRL-style state dict: OpenAI-CLIP keys of both towers plus the MIM head."""
    torch.manual_seed(seed)
    model, _ = create_clip(ARCH, None)
    state = dict(model.state_dict())
    width = model.visual.conv1.out_channels
    state.update({
        "visual.mask_token": torch.randn(width),
        "visual.lm_transformer.resblocks.0.attn.in_proj_weight": torch.randn(3 * width, width),
        "visual.ln_lm.weight": torch.ones(width),
        "visual.lm_head.weight": torch.randn(8192, width),
    })
    return state


@pytest.fixture(scope="module")
def farl_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("farl") / FARL_FILE
    torch.save({"state_dict": farl_state()}, path)
    return path


def test_farl_file_loads_non_strictly(farl_file):
    model, tokenizer, report = load_farl(farl_file, ARCH)
    expected = farl_state()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], msg=key)
    assert report["ignored_mim_keys"] == 4 and report["ignored_other_keys"] == [] and not model.training
    assert tokenizer(["a face"]).shape == (1, 77)


def test_missing_file_says_what_to_get(tmp_path):
    with pytest.raises(DferbenchError, match=f"{FARL_FILE}.*FacePerceiver/FaRL.*model.pretrained"):
        load_farl(tmp_path / "nowhere.pth", ARCH)


def test_files_that_are_not_farl_fail_clearly(tmp_path):
    text_only = {k: v for k, v in farl_state().items() if not k.startswith("visual.")}
    torch.save({"state_dict": text_only}, tmp_path / "text.pth")
    with pytest.raises(DferbenchError, match="no image-tower keys.*not a FaRL"):
        load_farl(tmp_path / "text.pth", ARCH)
    image_only = {k: v for k, v in farl_state().items() if k.startswith("visual.")}
    torch.save(image_only, tmp_path / "image.pth")
    with pytest.raises(DferbenchError, match="lacks .* weights.*text tower"):
        load_farl(tmp_path / "image.pth", ARCH)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(DferbenchError, match="cannot read .* safely.*weights_only=True"):
        load_farl(tmp_path / "junk.pth", ARCH)
    with pytest.raises(DferbenchError, match="does not fit"):
        load_farl(tmp_path / "image.pth", "dferbench-tiny")


def test_pickled_objects_are_not_executed(tmp_path):
    path = tmp_path / "with-args.pth"
    torch.save({"state_dict": farl_state(), "args": argparse.Namespace(lr=1)}, path)
    _, _, report = load_farl(path, ARCH)  # weights_only refuses Namespace: rebuilt inert, tensors read
    assert report["skipped_objects"] == ["argparse.Namespace"]


def test_zeroshot_farl_matches_zeroshot_clip_on_the_same_weights(farl_file, tmp_path):
    settings = TINY + ["data.normalize=clip", "model.clip_model=" + ARCH]
    farl = api.run("zeroshot-farl", "synthetic", folds=[1], output=tmp_path, echo=lambda m: None,
                   overrides=settings + [f"model.pretrained={farl_file}"])[0]
    clean = tmp_path / "clip-format.pth"  # the same weights without the MIM head: open_clip loads it strictly
    torch.save({k: v for k, v in farl_state().items() if not k.startswith(MIM_PREFIXES)}, clean)
    clip = api.run("zeroshot-clip", "synthetic", folds=[1], output=tmp_path, echo=lambda m: None,
                   overrides=settings + [f"model.pretrained={clean}"])[0]
    assert farl["confusion"] == clip["confusion"] and farl["fit"]["farl_weights"]["ignored_mim_keys"] == 4
    assert farl["family"] == "text-based"


def test_zeroshot_farl_needs_a_file_and_skips_synthetic(tmp_path):
    assert "zeroshot-farl" not in api.models_for("synthetic")
    with pytest.raises(DferbenchError, match=FARL_FILE):
        api.run("zeroshot-farl", "synthetic", folds=[1], output=tmp_path, echo=lambda m: None,
                overrides=TINY + ["model.pretrained=" + str(tmp_path / FARL_FILE)])
