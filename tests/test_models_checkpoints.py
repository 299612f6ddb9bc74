"""The DFER-CLIP authors' released checkpoints, read safely (dferbench's own format: test_checkpoints.py)."""

from __future__ import annotations

import importlib.abc
import logging
import sys
import types

import numpy as np
import open_clip
import pytest
import torch

from dferbench_plugins.dferclip import checkpoints as ck
from dferbench.models.clip import build_clip_from_config, create_clip
from dferbench_plugins.dferclip.network import DFERCLIP, build_optimizer

TEXTS = [
    "a smiling mouth, raised cheeks, wrinkled eyes, and arched eyebrows.",
    "tears, a downward turned mouth, drooping upper eyelids, and a wrinkled forehead.",
    "furrowed eyebrows, narrow eyes, tightened lips, and flared nostrils.",
]
FAKE_MODULE = "dfer_clip_authors_main_absent"
TRAP_CALLS: list[str] = []


def _trap(*args):
    """Must never run: stands for arbitrary code referenced by a pickle."""
    TRAP_CALLS.append(repr(args))
    return args


class _Trap:
    def __reduce__(self):
        return (_trap, ("pwned",))


class RecorderMeter:
    """Stands in for the authors' main.RecorderMeter (numpy curves + a booby trap)."""

    def __init__(self, total_epoch: int):
        self.total_epoch = total_epoch
        self.current_epoch = 3
        self.epoch_losses = np.zeros((total_epoch, 2), dtype=np.float32)
        self.epoch_accuracy = np.ones((total_epoch, 2), dtype=np.float32)
        self.trap = _Trap()


RecorderMeter.__module__ = FAKE_MODULE  # pickled as dfer_clip_authors_main_absent.RecorderMeter


class _ImportSpy(importlib.abc.MetaPathFinder):
    def __init__(self):
        self.seen: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(FAKE_MODULE):
            self.seen.append(fullname)
        return None


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    clip, tok = create_clip("dferbench-test-tiny", None)
    m = DFERCLIP(clip, TEXTS, tokenizer=tok)
    with torch.no_grad():  # move away from init so a reload can't pass by accident
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _authors_state_dict(model: DFERCLIP) -> dict[str, torch.Tensor]:
    """What DataParallel(GenerateModel).state_dict() looks like for this model."""
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if k != "text_encoder.token_embedding.weight"}
    clip_like = {f"visual.{k}": v for k, v in model.image_encoder.state_dict().items()}
    te = model.text_encoder
    clip_like.update({f"transformer.{k}": v for k, v in te.transformer.state_dict().items()})
    clip_like.update(
        {
            "positional_embedding": te.positional_embedding.detach(),
            "text_projection": te.text_projection.detach(),
            "token_embedding.weight": te.token_embedding.weight.detach(),
            "ln_final.weight": te.ln_final.weight.detach(),
            "ln_final.bias": te.ln_final.bias.detach(),
            "logit_scale": torch.tensor(4.6052),
        }
    )
    sd.update({f"module.clip_model_.{k}": v for k, v in clip_like.items()})
    return sd


def _save_authors_checkpoint(model: DFERCLIP, path, with_recorder: bool = True) -> None:
    optimizer, _ = build_optimizer(model)
    payload = {
        "epoch": 17,
        "state_dict": _authors_state_dict(model),
        "best_acc": torch.tensor(71.25),
        "optimizer": optimizer.state_dict(),
    }
    if with_recorder:
        payload["recorder"] = RecorderMeter(50)
        fake = types.ModuleType(FAKE_MODULE)
        fake.RecorderMeter = RecorderMeter
        sys.modules[FAKE_MODULE] = fake  # only while pickling, as the authors' __main__ was
        try:
            torch.save(payload, path)
        finally:
            del sys.modules[FAKE_MODULE]
    else:
        torch.save(payload, path)


def test_authors_checkpoint_loads_with_identical_logits(model, tmp_path, caplog):
    path = tmp_path / "DFEW-set1-model_best.pth"
    _save_authors_checkpoint(model, path)
    # Sanity: the file really needs the absent module under a plain torch.load.
    with pytest.raises(ModuleNotFoundError):
        torch.load(path, weights_only=False)
    sys.modules.pop(FAKE_MODULE, None)

    spy = _ImportSpy()
    sys.meta_path.insert(0, spy)
    TRAP_CALLS.clear()
    try:
        with caplog.at_level(logging.INFO, logger="dferbench_plugins.dferclip.checkpoints"):
            loaded = ck.load_authors_checkpoint(path, TEXTS, clip_model_name="dferbench-test-tiny")
    finally:
        sys.meta_path.remove(spy)
    assert spy.seen == [] and FAKE_MODULE not in sys.modules  # never imported
    assert TRAP_CALLS == []  # never executed
    assert f"{FAKE_MODULE}.RecorderMeter" in loaded.skipped_objects
    assert any(f"{__name__}._trap" == s for s in loaded.skipped_objects)
    assert "replaced by inert placeholders" in caplog.text and f"{FAKE_MODULE}.RecorderMeter" in caplog.text
    assert "sit in 'recorder'" in caplog.text

    assert loaded.epoch == 17 and loaded.best_acc == pytest.approx(71.25)
    assert loaded.missing_keys == [] and loaded.unexpected_keys == []
    assert "clip_model_.logit_scale" in loaded.dropped_keys
    assert "clip_model_.visual.conv1.weight" in loaded.dropped_keys
    assert not loaded.model.training
    video = torch.rand(2, 16, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(video), model(video))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k


def test_authors_checkpoint_texts_recovered_from_buffers(model, tmp_path):
    path = tmp_path / "ckpt.pth"
    _save_authors_checkpoint(model, path)
    loaded = ck.load_authors_checkpoint(path, clip_model_name="dferbench-test-tiny")
    assert loaded.texts_recovered and loaded.class_texts == TEXTS
    video = torch.rand(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(video), model(video))


def test_authors_checkpoint_with_other_texts_is_refused(model, tmp_path):
    path = tmp_path / "ckpt.pth"
    _save_authors_checkpoint(model, path)
    with pytest.raises(ValueError, match="other texts"):
        ck.load_authors_checkpoint(path, ["happiness.", "sadness.", "anger."], clip_model_name="dferbench-test-tiny")


def test_clean_checkpoint_reads_weights_only(model, tmp_path):
    path = tmp_path / "clean.pth"
    _save_authors_checkpoint(model, path, with_recorder=False)
    obj, skipped = ck.read_torch_checkpoint(path)
    assert skipped == [] and obj["epoch"] == 17
    loaded = ck.load_authors_checkpoint(path, TEXTS, clip_model_name="dferbench-test-tiny")
    assert loaded.skipped_objects == []


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.pth"):
        ck.read_torch_checkpoint(tmp_path / "no_such.pth")


def test_restricted_unpickler_never_calls_globals(tmp_path):
    path = tmp_path / "trap.pth"
    torch.save({"w": torch.arange(3.0), "evil": _Trap(), "od": __import__("collections").OrderedDict(a=1)}, path)
    TRAP_CALLS.clear()
    obj, skipped = ck.read_torch_checkpoint(path)
    assert TRAP_CALLS == [] and skipped == [f"{__name__}._trap"]
    assert torch.equal(obj["w"], torch.arange(3.0)) and obj["od"] == {"a": 1}
    assert "skipped" in repr(obj["evil"])


def test_convert_strips_prefix_and_verifies_duplicates(model):
    sd = _authors_state_dict(model)
    converted, dropped = ck.convert_authors_state_dict(sd)
    assert set(converted) == set(model.state_dict())
    assert all(k.startswith("clip_model_.") for k in dropped)
    bad = dict(sd)
    key = "module.clip_model_.visual.conv1.weight"
    bad[key] = bad[key] + 1
    with pytest.raises(ValueError, match="clip_model_.visual.conv1.weight"):
        ck.convert_authors_state_dict(bad)


def _clip_keys_as_dferclip(clip):
    sd = {"image_encoder." + k[len("visual.") :]: v for k, v in clip.state_dict().items() if k.startswith("visual.")}
    sd.update({"text_encoder." + k: v for k, v in clip.state_dict().items() if not k.startswith("visual.")})
    return sd


def test_infer_architecture_vit_b32_and_tiny(model):
    with torch.device("meta"):  # shapes only, no memory
        b32 = build_clip_from_config(open_clip.get_model_config("ViT-B-32-quickgelu"), device=None)
    name, cfg = ck.infer_clip_architecture(_clip_keys_as_dferclip(b32))
    assert name == "ViT-B-32-quickgelu"
    assert cfg["embed_dim"] == 512 and cfg["quick_gelu"] is True
    assert cfg["vision_cfg"] == {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32}
    assert cfg["text_cfg"] == {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}

    name, cfg = ck.infer_clip_architecture(model.state_dict())
    assert name is None
    assert cfg["embed_dim"] == 32
    assert cfg["vision_cfg"]["image_size"] == 32 and cfg["vision_cfg"]["patch_size"] == 8
    assert cfg["vision_cfg"]["width"] == 64 and cfg["vision_cfg"]["layers"] == 2
    assert cfg["text_cfg"]["width"] == 32 and cfg["text_cfg"]["layers"] == 2
    assert cfg["text_cfg"]["context_length"] == 77 and cfg["text_cfg"]["vocab_size"] == 49408


def test_describe_architecture_sees_heads(model):
    cfg = ck.describe_clip_architecture(model)
    assert cfg["vision_cfg"]["head_width"] == 32 and cfg["text_cfg"]["heads"] == 2
    assert cfg["quick_gelu"] is True
