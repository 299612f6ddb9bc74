"""dferbench's generic checkpoints: the format, saving from a unit, rebuilding any model
that registers ``rebuild``, the earlier DFER-CLIP format, and every broken file as one
line through `dferbench evaluate` and `dferbench predict` (exit 2, no traceback)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import safetensors.torch
import torch
from click.testing import CliRunner

from dferbench import hookimpl
from dferbench.cli import cli
from dferbench.models import checkpoints as ck
from dferbench.models.checkpoints import CheckpointError, CheckpointInfo
from dferbench.models.clip import create_clip
from dferbench.plugin.manager import pm
from dferbench.plugin.method import ModelContext
from dferbench.run.trained import open_checkpoint
from dferbench.testing import write_frames
from dferbench_plugins.dferclip.loading import rebuild_info
from dferbench_plugins.dferclip.network import DFERCLIP
from dferbench_plugins.synthetic import DFEW_CLASSES
from dferbench_plugins.textsets import descriptor_texts

from conftest import TOY_CLASSES, MeanBrightness
from test_models_checkpoints import TRAP_CALLS, _authors_state_dict, _save_authors_checkpoint

TEXTS = [t[0] for t in descriptor_texts(DFEW_CLASSES)]
VIDEO = torch.rand(2, 16, 3, 32, 32)


@pytest.fixture(scope="module")
def network() -> DFERCLIP:
    torch.manual_seed(5)
    clip, tok = create_clip("dferbench-test-tiny", None)
    model = DFERCLIP(clip, TEXTS, tokenizer=tok)
    with torch.no_grad():  # away from the initialisation, so a reload cannot pass by accident
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _info(network: DFERCLIP, **changes) -> CheckpointInfo:
    base = dict(model="dferclip", classes=list(DFEW_CLASSES), class_texts=TEXTS, num_frames=16, image_size=32,
                normalize="clip", rebuild=rebuild_info(network), text_set="descriptors", plugin="dferclip",
                dataset="synthetic", fold=1, seed=1)
    return CheckpointInfo(**{**base, **changes})


@pytest.fixture(scope="module")
def good(network, tmp_path_factory):
    """A valid dferbench checkpoint of the tiny DFER-CLIP."""
    path = tmp_path_factory.mktemp("good") / "fold1-seed1.checkpoint.safetensors"
    ck.save_checkpoint(path, network, _info(network))
    return path


def test_round_trip_rebuilds_the_same_network(network, good):
    sidecar = json.loads(ck.sidecar_path(good).read_text())
    assert ck.sidecar_path(good).name == "fold1-seed1.checkpoint.json"
    assert sidecar["format"] == ck.FORMAT and sidecar["format_version"] == ck.FORMAT_VERSION
    assert sidecar["classes"] == list(DFEW_CLASSES) and sidecar["class_texts"] == TEXTS
    assert sidecar["rebuild"]["clip_config"]["vision_cfg"]["head_width"] == 32
    assert "class_texts" not in sidecar["rebuild"]["options"]
    with safetensors.safe_open(str(good), "pt") as f:
        assert f.metadata()["format"] == ck.FORMAT
    loaded = open_checkpoint(good, dataset="synthetic")
    assert loaded.info == _info(network) and not loaded.network.training
    assert "trained on synthetic fold 1 seed 1" in loaded.message
    with torch.no_grad():
        assert torch.equal(loaded.network(VIDEO), network(VIDEO))


def test_a_unit_saves_its_checkpoint_next_to_its_result(network, tmp_path):
    from dferbench.run.runner import text_lookup

    config = {"data": {"num_frames": 16, "image_size": 32, "normalize": "clip"}, "model": {"text": "descriptors"},
              "train": {}, "protocol": {}}
    ctx = ModelContext(model="dferclip", dataset="synthetic", fold=2, classes=list(DFEW_CLASSES), config=config,
                       device="cpu", seed=3, workdir=tmp_path / ".work", texts=text_lookup,
                       unit_path=tmp_path / "synthetic" / "dferclip" / "fold2-seed3.json")
    path = ctx.save_checkpoint(network, rebuild=rebuild_info(network), class_texts=TEXTS, text_set="descriptors")
    assert path == tmp_path / "synthetic" / "dferclip" / "fold2-seed3.checkpoint.safetensors"
    info = ck.read_info(path)
    assert (info.dataset, info.fold, info.seed, info.plugin) == ("synthetic", 2, 3, "dferclip")
    assert info.config == config and len(info.config_hash) == 16 and info.dferbench_version
    assert (info.num_frames, info.image_size, info.normalize) == (16, 32, "clip")


# --------------------------------------------------------------------------------------
# Any model: a third-party plugin that registers `rebuild`


class ToyCheckpointMethod:
    def __init__(self, ctx):
        self.ctx = ctx
        torch.manual_seed(ctx.seed)
        self.module = MeanBrightness(len(ctx.classes))

    def fit(self, train, monitor):
        from dferbench.run.engine import train_module

        opt = torch.optim.SGD(self.module.parameters(), lr=0.5, momentum=0.9)
        info = train_module(self.module, opt, None, train, monitor, epochs=3, batch_size=8, device=self.ctx.device,
                            seed=self.ctx.seed)
        if self.ctx.options["save_checkpoint"]:
            self.ctx.save_checkpoint(self.module, rebuild={"classes": len(self.ctx.classes)})
        return info

    def predict(self, clips):
        from dferbench.run.engine import predict_module

        return predict_module(self.module, clips, batch_size=16, device=self.ctx.device)


class ToyCheckpointPlugin:
    @hookimpl
    def dferbench_register_models(self, register):
        register("toy-saver", ToyCheckpointMethod, options={"save_checkpoint": False}, family="classifier-based",
                 presets={"default": {"data": {"image_size": 8, "num_frames": 4}}},
                 rebuild=lambda info, device: MeanBrightness(info.rebuild["classes"]))


def test_any_model_with_rebuild_saves_evaluates_and_predicts(toy_plugin, tmp_path):
    pm.register(ToyCheckpointPlugin(), name="undo-toy-saver")
    try:
        runner = CliRunner()
        res = runner.invoke(cli, ["run", "-m", "toy-saver", "-d", "toy", "--folds", "1", "-o", str(tmp_path / "runs"),
                                  "--set", "model.save_checkpoint=true", "--no-leaderboard"])
        assert res.exit_code == 0, res.output
        [ckpt] = (tmp_path / "runs").rglob("fold1-seed1.checkpoint.safetensors")
        [trained] = [p for p in ckpt.parent.glob("fold1-seed1.json")]
        info = ck.read_info(ckpt)
        assert (info.model, info.classes, info.class_texts, info.num_frames) == ("toy-saver", TOY_CLASSES,
                                                                                 TOY_CLASSES, 4)
        res = runner.invoke(cli, ["evaluate", "-c", str(ckpt), "-d", "toy", "--fold", "1", "-o", str(tmp_path / "ev")])
        assert res.exit_code == 0, res.output
        [evaluated] = (tmp_path / "ev").rglob("fold1-seed1.json")
        before, after = json.loads(trained.read_text()), json.loads(evaluated.read_text())
        assert after["selection"] == "checkpoint" and after["model"] == "toy-saver"
        assert (after["uar"], after["war"], after["confusion"]) == (before["uar"], before["war"], before["confusion"])
        frames = tmp_path / "clip"
        write_frames(frames, 12, size=8)
        res = runner.invoke(cli, ["predict", str(frames), "-c", str(ckpt), "--face-detector", "none", "--window", "0",
                                  "-o", str(tmp_path / "pred"), "--no-plot"])
        assert res.exit_code == 0, res.output
        timeline = json.loads((tmp_path / "pred" / "clip" / "timeline.json").read_text())
        assert timeline["classes"] == TOY_CLASSES and timeline["settings"]["model"] == "toy-saver"
        assert len(timeline["tracks"][0]["windows"][0]["probs"]) == 3
    finally:
        pm.unregister(name="undo-toy-saver")


def test_a_model_without_rebuild_is_named(network, good, tmp_path, toy_plugin):
    path = tmp_path / "toy.checkpoint.safetensors"
    ck.save_checkpoint(path, MeanBrightness(3), CheckpointInfo(model="toy-model", classes=TOY_CLASSES,
                                                               class_texts=TOY_CLASSES, num_frames=4, image_size=8,
                                                               normalize="none"))
    with pytest.raises(CheckpointError, match="model 'toy-model' .* registers no `rebuild`"):
        open_checkpoint(path)


# --------------------------------------------------------------------------------------
# The earlier DFER-CLIP format


def _legacy(network: DFERCLIP, path, classes=DFEW_CLASSES):
    """What dferbench wrote for DFER-CLIP before the generic format (``dferbench.dferclip``)."""
    from dferbench_plugins.dferclip.checkpoints import describe_clip_architecture

    safetensors.torch.save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    config = {"data": {"num_frames": 16, "image_size": 32, "normalize": "clip"}, "model": {"text": "descriptors"}}
    path.with_suffix(".json").write_text(json.dumps({
        "format": "dferbench.dferclip", "format_version": 1, "weights": path.name, "options": network.options(),
        "clip_config": describe_clip_architecture(network), "meta": {"classes": list(classes), "config": config}}))


def test_earlier_dferclip_checkpoints_still_load(network, tmp_path):
    path = tmp_path / "dferclip-fold1-seed1.safetensors"
    _legacy(network, path)
    loaded = open_checkpoint(path, dataset="synthetic")
    assert loaded.info.classes == list(DFEW_CLASSES) and loaded.info.class_texts == TEXTS
    assert (loaded.info.num_frames, loaded.info.image_size, loaded.info.normalize) == (16, 32, "clip")
    assert "earlier dferbench.dferclip format" in loaded.message
    with torch.no_grad():
        assert torch.equal(loaded.network(VIDEO), network(VIDEO))


# --------------------------------------------------------------------------------------
# Broken files: one line each, through both commands


def _rewrite(good, dest, change):
    """``good``'s weights through ``change(tensors)`` (None: copied unchanged) and its sidecar."""
    tensors = safetensors.torch.load_file(str(good))
    if change:
        change(tensors)
    safetensors.torch.save_file(tensors, str(dest))
    dest.with_suffix(".json").write_text(ck.sidecar_path(good).read_text())
    return dest


def _sidecar(good, dest, change):
    """``good``'s weights with a sidecar whose JSON went through ``change(dict)``."""
    _rewrite(good, dest, None)
    data = json.loads(ck.sidecar_path(good).read_text())
    change(data)
    dest.with_suffix(".json").write_text(json.dumps(data))
    return dest


def _raw(name, data):
    def make(good, folder, network):
        path = folder / name
        path.write_bytes(data(good) if callable(data) else data)
        return path
    return make


def _truncated(good):
    return good.read_bytes()[: good.stat().st_size // 2]


def _pth(payload=None, truncate=False, recorder=False):
    def make(good, folder, network):
        path = folder / "model.pth"
        if payload is None:
            _save_authors_checkpoint(network, path, with_recorder=recorder)  # the recorder pickles a trap
        else:
            torch.save(payload(network), path)
        if truncate:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path
    return make


def _weights(change):
    return lambda good, folder, network: _rewrite(good, folder / "m.checkpoint.safetensors", change)


def _json(change):
    return lambda good, folder, network: _sidecar(good, folder / "m.checkpoint.safetensors", change)


def _without(key):
    def change(tensors):
        del tensors[key]
    return change


def _nan(tensors):
    tensors["temporal_net.pos_embedding"][0, 0, 0] = float("nan")


def _shuffled(data):
    data["classes"] = data["classes"][1:] + data["classes"][:1]


def _no_sidecar(good, folder, network):
    path = _rewrite(good, folder / "m.checkpoint.safetensors", None)
    path.with_suffix(".json").unlink()
    return path


def _legacy_eight(good, folder, network):
    path = folder / "old.safetensors"
    _legacy(network, path, classes=list(DFEW_CLASSES) + ["contempt"])
    return path


BROKEN = {  # name: (make(good, folder, network), what the one line says, dataset)
    "empty safetensors": (_raw("m.checkpoint.safetensors", b""), "is empty (0 bytes)", "synthetic"),
    "empty pth": (_raw("model.pth", b""), "is empty (0 bytes)", "synthetic"),
    "random bytes": (_raw("m.checkpoint.safetensors", np.random.default_rng(0).bytes(4000)),
                     "is not a checkpoint of a known kind", "synthetic"),
    "random pth": (_raw("model.pth", np.random.default_rng(1).bytes(4000)), "is not a checkpoint of a known kind",
                   "synthetic"),
    "text file": (_raw("notes.pth", b"hello, this is not a model\n" * 20), "is not a checkpoint of a known kind",
                  "synthetic"),
    "truncated safetensors": (_raw("m.checkpoint.safetensors", _truncated), "is truncated", "synthetic"),
    "safetensors header cut": (_raw("m.checkpoint.safetensors", lambda g: g.read_bytes()[:200]), "is truncated",
                               "synthetic"),
    "truncated pth": (_pth(truncate=True), "is truncated or damaged", "synthetic"),
    "no sidecar": (_no_sidecar, "has no sidecar m.checkpoint.json", "synthetic"),
    "sidecar not json": (lambda g, f, n: (_rewrite(g, f / "m.checkpoint.safetensors", None),
                                          (f / "m.checkpoint.json").write_text("{\"format\": \"dferb"))[0],
                         "the sidecar is not valid JSON (line 1", "synthetic"),
    "sidecar list": (lambda g, f, n: (_rewrite(g, f / "m.checkpoint.safetensors", None),
                                      (f / "m.checkpoint.json").write_text("[1, 2]"))[0],
                     "the sidecar must be a JSON object", "synthetic"),
    "sidecar without classes": (_json(lambda d: d.pop("classes")), "the sidecar has no 'classes'", "synthetic"),
    "sidecar newer": (_json(lambda d: d.update(format_version=99)), "format version 99 is newer", "synthetic"),
    "sidecar other format": (_json(lambda d: d.update(format="someone.else")),
                             "a sidecar of format 'someone.else', which DFER-CLIP does not read", "synthetic"),
    "sidecar bad frames": (_json(lambda d: d.update(num_frames=0)), "num_frames must be a positive integer",
                           "synthetic"),
    "8 classes, 7 texts": (_json(lambda d: d["classes"].append("contempt")), "lists 8 classes", "synthetic"),
    "classes not the dataset's": (_json(_shuffled), "but dataset 'synthetic' has 7", "synthetic"),
    "7-class checkpoint on 11 classes": (_weights(None), "scores 7 classes (happiness", "synthetic-11"),
    "unknown model": (_json(lambda d: d.update(model="nosuch")), "model 'nosuch' (plugin dferclip) is not installed",
                      "synthetic"),
    "wrong shape": (_weights(lambda t: t.update({"temporal_net.pos_embedding": t["temporal_net.pos_embedding"][:, :9]})),
                    "key 'temporal_net.pos_embedding' has shape [1, 9, 32], the model expects [1, 17, 32]", "synthetic"),
    "missing key": (_weights(_without("temporal_net.cls_token")),
                    "1 key the model needs missing (temporal_net.cls_token)", "synthetic"),
    "unexpected keys": (_weights(lambda t: t.update({f"extra.{i}": torch.zeros(2) for i in range(5)})),
                        "5 keys the model does not have (extra.0, extra.1, extra.2 and 2 more)", "synthetic"),
    "nan weights": (_weights(_nan), "1 tensors hold NaN or infinite values (temporal_net.pos_embedding)", "synthetic"),
    "pth not dfer-clip": (_pth(lambda n: {"state_dict": {"w": torch.zeros(3)}}), "not a DFER-CLIP checkpoint",
                          "synthetic"),
    "pth of tensors only": (_pth(lambda n: torch.zeros(3)), "does not hold a state dict of tensors", "synthetic"),
    "pth missing key": (_pth(lambda n: {k: v for k, v in _authors_state_dict(n).items()
                                        if k != "module.temporal_net.cls_token"}),
                        "1 key the model needs missing (temporal_net.cls_token)", "synthetic"),
    "pth on 11 classes": (_pth(), "scores 7 classes but dataset 'synthetic-11' has 11", "synthetic-11"),
    "pth pickling code, on 11 classes": (_pth(recorder=True), "scores 7 classes but dataset 'synthetic-11' has 11",
                                         "synthetic-11"),
    "earlier format, 8 classes": (_legacy_eight, "scores 7 classes but the file lists 8", "synthetic"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames") / "clip"
    write_frames(folder, 20, size=32)
    return folder


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_checkpoint_is_one_line(case, command, good, network, inputs, tmp_path):
    make, expected, dataset = BROKEN[case]
    path = make(good, tmp_path, network)
    settings = ["--set", "data.num_clips=35", "--set", "model.clip_model=dferbench-test-tiny"]
    if command == "evaluate":
        args = ["evaluate", "-c", str(path), "-d", dataset, "-o", str(tmp_path / "out")] + settings
    else:
        args = ["predict", str(inputs), "-c", str(path), "-d", dataset, "--face-detector", "none",
                "-o", str(tmp_path / "out")] + settings
    res = CliRunner().invoke(cli, args)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert expected in lines[0], lines[0]
    assert path.name in lines[0] or path.with_suffix(".json").name in lines[0], lines[0]  # names the bad file
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not (tmp_path / "out").exists()  # nothing written
    assert TRAP_CALLS == []


def test_a_file_named_safetensors_holding_a_torch_file_is_read_as_what_it_is(network, tmp_path):
    path = tmp_path / "actually-a.pth.safetensors"
    _save_authors_checkpoint(network, path, with_recorder=False)
    assert ck.file_kind(path) == "torch"
    loaded = open_checkpoint(path, dataset="synthetic", overrides=["model.clip_model=dferbench-test-tiny"])
    with torch.no_grad():
        assert torch.allclose(loaded.network(VIDEO), network(VIDEO), atol=1e-5)


def test_safetensors_header_check_needs_no_tensor_bytes(good, tmp_path):
    data = good.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    cut = tmp_path / "cut.checkpoint.safetensors"
    cut.write_bytes(data[: 8 + header_len + 10])
    with pytest.raises(CheckpointError, match=r"is truncated: its tensors need \d+ bytes, the file has"):
        ck.read_weights(cut)
