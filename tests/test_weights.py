"""Pretrained CLIP weights offline: every file format a user holds loads through create_clip,
the Hugging Face cache is used without a network call, and missing weights stop a run at
plan time with one line. No test touches the network: ``socket.create_connection`` is
replaced by a function that fails the test (or plays "no network" where a test says so)."""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import types
import zipfile

import pytest
import safetensors.torch
import torch
from click.testing import CliRunner
from torch import nn

from dferbench.cli import cli
from dferbench.errors import DferbenchError
from dferbench.models import weights
from dferbench.models.clip import build_clip_from_config, create_clip
from dferbench.models.torch_checkpoint import read_torchscript_tensors
from dferbench.models.weights import MissingWeights, check_weights, require_weights
from dferbench.run import runner

# Writing TorchScript archives (as OpenAI's file is) uses torch.jit, deprecated in favour of torch.export.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

TINY = "dferbench-test-tiny"
OPENAI_REPO = "timm/vit_base_patch32_clip_224.openai"  # open_clip 3.3's hf-hub entry of ViT-B-32 "openai"


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """An empty Hugging Face cache and clip cache, HF_HUB_OFFLINE unset, no probe result
    remembered, and any network connection a test failure."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to connect to {args[0] if args else kwargs}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(weights, "_probed", {})
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.cache/clip
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE",
                     "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model, _ = create_clip(TINY, None)
    return {k: v.clone() for k, v in model.state_dict().items()}


class StateHolder(nn.Module):
    """A module whose parameters and buffers are exactly ``state`` (nested by dotted key),
    as OpenAI's TorchScript CLIP holds its weights; integer tensors become buffers."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        for key, value in state.items():
            *path, leaf = key.split(".")
            module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, nn.Module())
                module = getattr(module, part)
            if value.is_floating_point():
                module.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
            else:
                module.register_buffer(leaf, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.logit_scale


def save_torchscript(state: dict[str, torch.Tensor], path) -> None:
    """Write ``state`` as OpenAI did: fp16, plus its integer ``input_resolution`` etc., traced."""
    state = {k: v.half() for k, v in state.items()}
    state.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    holder = StateHolder(state)
    traced = torch.jit.trace(holder, torch.zeros(1, dtype=torch.half))
    torch.jit.save(traced, str(path))


def assert_loaded(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert loaded[key].dtype == torch.float32, key
        torch.testing.assert_close(loaded[key], value.float(), rtol=0, atol=0, msg=key)


# ---- every format, on the tiny test architecture ----


@pytest.mark.parametrize("fmt", ["safetensors", "safetensors-fp16", "bin", "state_dict-key", "module-prefix",
                                 "pickled-args", "torchscript"])
def test_every_format_loads_through_create_clip(tmp_path, fmt):
    state = tiny_state()
    path = tmp_path / {"safetensors": "w.safetensors", "safetensors-fp16": "w16.safetensors", "bin": "w.bin",
                       "state_dict-key": "epoch_32.pt", "module-prefix": "ddp.pth", "pickled-args": "args.pt",
                       "torchscript": "ViT-tiny.pt"}[fmt]
    expected = state
    if fmt == "safetensors":
        safetensors.torch.save_file(state, str(path))
    elif fmt == "safetensors-fp16":
        expected = {k: v.half() for k, v in state.items()}
        safetensors.torch.save_file(expected, str(path))
    elif fmt == "bin":
        torch.save(state, path)
    elif fmt == "state_dict-key":  # open_clip's training checkpoint
        torch.save({"epoch": 32, "name": "run", "state_dict": state, "optimizer": {"state": {}}}, path)
    elif fmt == "module-prefix":  # saved from DistributedDataParallel
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    elif fmt == "pickled-args":  # weights_only refuses the Namespace: rebuilt inert, never imported
        torch.save({"state_dict": state, "args": argparse.Namespace(lr=1e-3)}, path)
    else:
        expected = {k: v.half() for k, v in state.items()}
        save_torchscript(state, path)
    model, tokenizer = create_clip(TINY, str(path))
    assert_loaded(model, expected)
    assert not model.training and tokenizer(["a face"]).shape == (1, 77)
    assert check_weights(TINY, str(path)).source == "file"


def test_torchscript_archive_is_read_without_compiling_its_code(tmp_path):
    """The reader ignores the archive's code/ (here broken beyond compiling) and turns a
    pickled callable into an inert placeholder instead of calling it."""
    state = tiny_state()
    good = tmp_path / "ViT-tiny.pt"
    save_torchscript(state, good)
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"raise RuntimeError('code ran')\n" if "/code/" in item.filename else data)
    with pytest.raises(Exception):
        torch.jit.load(str(broken))  # torch compiles code/: it refuses the file
    tensors, skipped = read_torchscript_tensors(broken)
    assert skipped == [] and set(tensors) == set(state) | {"input_resolution", "context_length", "vocab_size"}
    assert_loaded(create_clip(TINY, str(broken))[0], {k: v.half() for k, v in state.items()})


def test_torchscript_pickled_callables_are_not_called(tmp_path, monkeypatch):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    fake = types.ModuleType("__torch__")

    class Top:
        pass

    Top.__module__, Top.__qualname__ = "__torch__", "Top"
    fake.Top = Top
    monkeypatch.setitem(sys.modules, "__torch__", fake)
    top = Top()
    top.evil = Evil()
    import pickle

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(top, protocol=2))
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    tensors, skipped = read_torchscript_tensors(path)
    assert tensors == {} and skipped == [f"{os.system.__module__}.system"] and not marker.exists()
    with pytest.raises(DferbenchError, match="holds no state dict of tensors"):
        create_clip(TINY, str(path))
    assert not marker.exists()


def test_files_that_do_not_fit_say_what_differs(tmp_path):
    state = tiny_state()
    path = tmp_path / "tiny.safetensors"
    safetensors.torch.save_file(state, str(path))
    with pytest.raises(DferbenchError, match=r"does not fit open_clip 'dferbench-tiny'.*other shapes.*model.clip_model"):
        create_clip("dferbench-tiny", str(path))
    torch.save({f"prompt_learner.{k}": v for k, v in state.items()} | {"clip_model_.x": torch.zeros(1)},
               tmp_path / "authors.pth")
    with pytest.raises(DferbenchError, match="DFER-CLIP checkpoint: evaluate it with `dferbench evaluate"):
        create_clip(TINY, str(tmp_path / "authors.pth"))
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(DferbenchError, match="cannot read .*junk.bin safely.*incomplete"):
        create_clip(TINY, str(tmp_path / "junk.bin"))


def test_farl_reads_any_format(tmp_path):
    from dferbench_plugins.baselines.farl import load_farl

    state = tiny_state(1)
    state["visual.mask_token"] = torch.randn(state["visual.class_embedding"].shape)
    path = tmp_path / "farl.safetensors"
    safetensors.torch.save_file({f"module.{k}": v for k, v in state.items()}, str(path))
    model, _, report = load_farl(path, TINY)
    assert report["ignored_mim_keys"] == 1
    assert_loaded(model, {k: v for k, v in state.items() if k != "visual.mask_token"})


# ---- where open_clip tags are found, offline ----


def fake_hf_cache(root, repo: str, filename: str, data: bytes | None = None, tensors=None) -> str:
    """The Hugging Face hub cache layout huggingface_hub writes: a blob, a snapshot link, refs/main."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    blob = folder / "blobs" / hashlib.sha256(repo.encode()).hexdigest()
    blob.parent.mkdir(parents=True)
    if tensors is not None:
        safetensors.torch.save_file(tensors, str(blob))
    else:
        blob.write_bytes(data or b"x")
    snapshot = folder / "snapshots" / commit / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return str(snapshot)


def test_cached_tag_is_found_where_huggingface_hub_keeps_it(tmp_path):
    status = check_weights("ViT-B-32-quickgelu", "openai")
    assert status.source == "download" and not status.found
    assert status.searched[0] == str(tmp_path / "hf" / "hub" / f"models--{OPENAI_REPO.replace('/', '--')}")
    assert status.searched[1] == str(tmp_path / "home" / ".cache" / "clip" / "ViT-B-32.pt")
    cached = fake_hf_cache(tmp_path / "hf" / "hub", OPENAI_REPO, "open_clip_model.safetensors")
    status = check_weights("ViT-B-32-quickgelu", "openai")
    assert (status.source, str(status.path), status.found) == ("cache", cached, True)


def test_openai_file_in_the_clip_cache_is_found(tmp_path):
    local = tmp_path / "home" / ".cache" / "clip" / "ViT-B-32.pt"  # where OpenAI's clip.load keeps it
    local.parent.mkdir(parents=True)
    local.write_bytes(b"x")
    assert check_weights("ViT-B-32-quickgelu", "openai").path == local


def test_hf_hub_cache_variable_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    cached = fake_hf_cache(tmp_path / "elsewhere", OPENAI_REPO, "open_clip_pytorch_model.bin")
    assert str(check_weights("ViT-B-32", "openai").path) == cached


# ---- missing weights stop the run at plan time, with one line ----


def test_offline_run_stops_at_plan_time_with_one_line(tmp_path, offline, monkeypatch):
    from dferbench_plugins.synthetic import render

    def no_scan(*args, **kwargs):
        raise AssertionError("the dataset was built before the weights were checked")

    monkeypatch.setattr(render, "make_synthetic_dataset", no_scan)
    res = CliRunner().invoke(cli, ["run", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", "1", "-o",
                                   str(tmp_path / "runs"), "--set", "model.clip_model=ViT-B-32-quickgelu",
                                   "--set", "model.pretrained=openai"])
    assert res.exit_code != 0 and not isinstance(res.exception, AssertionError), res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    line = lines[0]
    assert "ViT-B-32-quickgelu pretrained='openai'" in line and "HF_HUB_OFFLINE=1" in line
    assert str(tmp_path / "hf" / "hub" / "models--timm--vit_base_patch32_clip_224.openai") in line
    assert f"hf download {OPENAI_REPO} open_clip_model.safetensors" in line
    assert "open_clip.create_model('ViT-B-32-quickgelu', pretrained='openai')" in line
    assert "--set model.pretrained=/path/to/" in line
    assert not (tmp_path / "runs").exists()


def test_custom_dataset_offline_fails_on_weights_before_reading_its_file(tmp_path, offline):
    (tmp_path / "never-read.csv").write_text("not a clip list\n")  # settings check that it exists, no more
    with pytest.raises(MissingWeights, match="pretrained='openai' are not on this machine"):
        runner.plan("zeroshot-clip", "custom", overrides=[f"data.file={tmp_path / 'never-read.csv'}"])


def test_no_network_is_found_by_a_short_probe(monkeypatch):
    attempts = []

    def unreachable(address, timeout=None, **kwargs):
        attempts.append((address, timeout))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    for _ in range(2):
        with pytest.raises(MissingWeights, match=r"no network: cannot reach huggingface.co:443 .*unreachable"):
            require_weights("ViT-B-32-quickgelu", "openai")
    assert attempts == [(("huggingface.co", 443), weights.PROBE_TIMEOUT_S)]  # once per process
    monkeypatch.setattr(weights, "_probed", {})
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.lab:3128")
    with pytest.raises(MissingWeights, match="proxy.lab:3128"):
        require_weights("ViT-B-32-quickgelu", "openai")


def test_a_probe_that_hangs_is_cut_short(monkeypatch):
    import threading

    release = threading.Event()

    def hang(*args, **kwargs):  # a name lookup that never answers
        release.wait(5)
        raise OSError("answered too late")

    monkeypatch.setattr(weights, "PROBE_TIMEOUT_S", 0.05)
    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        with pytest.raises(MissingWeights, match="no answer within 0.05 s"):
            require_weights("ViT-B-32-quickgelu", "openai")
    finally:
        release.set()


def test_online_download_failure_is_one_line(monkeypatch):
    from open_clip import pretrained

    monkeypatch.setattr(weights, "network_problem", lambda: None)

    def fail(*args, **kwargs):
        raise FileNotFoundError("Failed to download file (open_clip_pytorch_model.bin)\nlong traceback text")

    monkeypatch.setattr(pretrained, "download_pretrained_from_hf", fail)
    assert require_weights("ViT-B-32-quickgelu", "openai").source == "download"
    with pytest.raises(MissingWeights, match=r"downloading CLIP weights .* failed \(Failed to download file "
                                             r"\(open_clip_pytorch_model.bin\)\): looked in"):
        create_clip("ViT-B-32-quickgelu", "openai")


def test_missing_files_and_farl_say_where_to_get_them(tmp_path):
    from dferbench_plugins.baselines.farl import FARL_FILE, FARL_URL

    with pytest.raises(MissingWeights, match=f"{FARL_FILE}.*neither an existing file.*{FARL_URL}"):
        runner.plan("zeroshot-farl", "dfew")
    with pytest.raises(MissingWeights, match=r"nowhere.pt.*--set model.pretrained=/path/to/file"):
        runner.plan("zeroshot-clip", "synthetic", overrides=[f"model.pretrained={tmp_path / 'nowhere.pt'}"])
    with pytest.raises(MissingWeights, match="unknown open_clip model 'ViT-B-32-quickgelo'"):
        runner.plan("zeroshot-clip", "synthetic", overrides=["model.clip_model=ViT-B-32-quickgelo"])


# ---- dferbench weights ----


def test_weights_command_lists_presets_and_fails_only_with_missing(tmp_path, monkeypatch):
    from dferbench_plugins.baselines.farl import FARL_FILE

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["weights"])
    assert res.exit_code == 0, res.output
    rows = {tuple(line.split()[:2]) for line in res.output.splitlines()}
    assert ("dferclip", "others,") in rows and ("zeroshot-farl", "others,") in rows
    assert "dfew, ferv39k, mafw" in res.output and "here (shipped)" in res.output and "MISSING (download)" in res.output
    assert f"hf download {OPENAI_REPO}" in res.output
    res = CliRunner().invoke(cli, ["weights", "--missing"])
    assert res.exit_code == 1 and "here (shipped)" not in res.output and FARL_FILE in res.output

    fake_hf_cache(tmp_path / "hf" / "hub", OPENAI_REPO, "open_clip_model.safetensors")
    (tmp_path / FARL_FILE).write_bytes(b"x")  # the FaRL presets name the file relative to the working folder
    res = CliRunner().invoke(cli, ["weights", "--missing"])
    assert res.exit_code == 0 and "every weights file the presets need is here" in res.output, res.output
    assert "here (cache)" in CliRunner().invoke(cli, ["weights"]).output


# ---- the real ViT-B/32 layout (150 M parameters: slow) ----


@pytest.fixture(scope="module")
def vitb32_state():
    """Random fp16 weights with exactly the keys and shapes of ViT-B-32-quickgelu, as OpenAI ships them."""
    import open_clip

    with torch.device("meta"):
        shapes = build_clip_from_config(open_clip.get_model_config("ViT-B-32-quickgelu"), device=None).state_dict()
    generator = torch.Generator().manual_seed(0)
    return {k: (0.02 * torch.randn(v.shape, generator=generator)).half() for k, v in shapes.items()}


@pytest.mark.slow
def test_openai_torchscript_vit_b_32_loads(tmp_path, vitb32_state):
    path = tmp_path / "ViT-B-32.pt"
    save_torchscript(vitb32_state, path)
    model, _ = create_clip("ViT-B-32-quickgelu", str(path))
    assert_loaded(model, vitb32_state)
    assert sum(p.numel() for p in model.parameters()) > 150e6


@pytest.mark.slow
def test_openai_tag_from_a_fake_hf_cache_loads_offline(tmp_path, vitb32_state, offline):
    fake_hf_cache(tmp_path / "hf" / "hub", OPENAI_REPO, "open_clip_model.safetensors", tensors=vitb32_state)
    assert runner.plan("zeroshot-clip", "dfew").config["model"]["pretrained"] == "openai"  # plan passes offline
    model, _ = create_clip("ViT-B-32", "openai")  # GELU config + OpenAI weights: built with QuickGELU
    assert_loaded(model, vitb32_state)
    import open_clip

    assert isinstance(model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
