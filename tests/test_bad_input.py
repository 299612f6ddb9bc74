"""Every bad invocation ends the same way: exit code 2, one line naming the setting, the value
and what is valid, no traceback, nothing written. Most cases must fail before any dataset is
built or any weights are loaded (the `no_work` fixture makes building either an error)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dferbench.cli import cli

ZS = ("run", "-m", "zeroshot-clip", "-d", "synthetic")
DC = ("run", "-m", "dferclip", "-d", "synthetic")
RANGE_SEEDS = "protocol.seeds must be a non-empty list of integers >= 0 and < 4294967296"

# (id, arguments after the command's own, what the one line must contain). OUT stands for
# the output folder, FILE:<name> for a file the test writes (see FILES).
CASES = [
    # enumerated settings
    ("normalize", ZS + ("--set", "data.normalize=bogus"), "data.normalize must be one of none, clip, got 'bogus'"),
    ("augmentation", ZS + ("--set", "data.augmentation=sideways"),
     "data.augmentation must be one of auto, dfew, ferv39k, mafw, none, got 'sideways'"),
    ("pipeline", ZS + ("--set", "data.pipeline=turbo"), "data.pipeline must be one of auto, cpu, gpu, reference"),
    ("precision", ZS + ("--set", "train.precision=fp16"), "train.precision must be one of auto, bf16, fp32, got 'fp16'"),
    ("selection", ZS + ("--set", "protocol.selection=best"), "protocol.selection must be one of last_epoch, best_on_test"),
    ("device-setting", ZS + ("--set", "train.device=gpu"), "train.device must be auto, cpu, cuda, cuda:N"),
    ("device-tpu", ZS + ("--device", "tpu"), "--device: train.device must be auto, cpu, cuda, cuda:N (a GPU index) or "
     "mps, got 'tpu'"),
    ("device-empty", ZS + ("--device", ""), "train.device must be auto, cpu, cuda, cuda:N (a GPU index) or mps, got ''"),
    ("device-index", ZS + ("--device", "cuda:x"), "got 'cuda:x'"),
    ("frame-order", ("run", "-m", "zeroshot-clip", "-d", "dfew", "--set", "data.frame_order=random"),
     "data.frame_order must be one of natural, plain, got 'random'"),
    ("text-set", ZS + ("--set", "model.text=descriptorz"),
     "model.text must be a registered text set or file:PATH, got 'descriptorz'. Did you mean 'descriptors'?"),
    ("text-file", ZS + ("--set", "model.text=file:/no/such/descriptors.toml"),
     "model.text must be file:PATH of a descriptor file that exists, got 'file:/no/such/descriptors.toml'"),
    ("dferclip-text", DC + ("--set", "model.text=photo_of"), "Did you mean 'photo-of'?"),
    ("token-position", DC + ("--set", "model.class_token_position=left"),
     "model.class_token_position must be one of end, middle, front, got 'left'"),
    ("coop-token-position", ("run", "-m", "coop", "-d", "synthetic", "--set", "model.class_token_position=back"),
     "model.class_token_position must be one of end, middle, front, got 'back'"),
    # ranges
    ("epochs-0", ZS + ("--set", "train.epochs=0"), "train.epochs must be an integer >= 1, got 0"),
    ("epochs-negative", DC + ("--set", "train.epochs=-1"), "train.epochs must be an integer >= 1, got -1"),
    ("epochs-float", ZS + ("--set", "train.epochs=2.5"), "train.epochs must be an integer >= 1 (default 50), got 2.5"),
    ("batch-0", DC + ("--set", "train.batch_size=0"), "train.batch_size must be an integer >= 1, got 0"),
    ("batch-negative", DC + ("--set", "train.batch_size=-1"), "train.batch_size must be an integer >= 1, got -1"),
    ("eval-batch-0", ZS + ("--set", "train.eval_batch_size=0"), "train.eval_batch_size must be an integer >= 1, got 0"),
    ("frames-0", ZS + ("--set", "data.num_frames=0"), "data.num_frames must be an integer >= 1, got 0"),
    ("frames-negative", ZS + ("--set", "data.num_frames=-3"), "data.num_frames must be an integer >= 1, got -3"),
    ("image-size-0", ZS + ("--set", "data.image_size=0"), "data.image_size must be an integer >= 1, got 0"),
    ("clips-0", ZS + ("--set", "data.num_clips=0"), "data.num_clips must be an integer >= 35, got 0"),
    ("clips-negative", ZS + ("--set", "data.num_clips=-5"), "data.num_clips must be an integer >= 35, got -5"),
    ("clips-too-few", ("run", "-m", "zeroshot-clip", "-d", "synthetic-11", "--set", "data.num_clips=40"),
     "data.num_clips must be an integer >= 55, got 40"),
    ("workers", ZS + ("--set", "data.workers=-5"), "data.workers must be an integer >= -1, got -5"),
    ("prefetch", ZS + ("--set", "data.prefetch=-2"), "data.prefetch must be an integer >= -1, got -2"),
    ("render-size", ZS + ("--set", "data.render_size=0"), "data.render_size must be an integer >= 8, got 0"),
    ("generator-seed", ZS + ("--set", "data.generator_seed=-1"), "data.generator_seed must be an integer >= 0"),
    ("temperature-0", DC + ("--set", "model.temperature=0"), "model.temperature must be a number > 0, got 0.0"),
    ("temperature-negative", DC + ("--set", "model.temperature=-1"), "model.temperature must be a number > 0, got -1.0"),
    ("temperature-nan", DC + ("--set", "model.temperature=nan"), "model.temperature must be a finite number, got nan"),
    ("logit-scale", ZS + ("--set", "model.logit_scale=0"), "model.logit_scale must be a number > 0, got 0.0"),
    ("n-ctx", DC + ("--set", "model.n_ctx=0"), "model.n_ctx must be an integer >= 1, got 0"),
    ("temporal-depth", DC + ("--set", "model.temporal_depth=-1"), "model.temporal_depth must be an integer >= 0"),
    ("milestones", DC + ("--set", "model.milestones=[0]"), "model.milestones must be a list of integers >= 1, got [0]"),
    ("gamma", DC + ("--set", "model.gamma=0"), "model.gamma must be a number > 0, got 0.0"),
    ("learning-rate", DC + ("--set", "model.lr_image=-1"), "model.lr_image must be a number >= 0, got -1.0"),
    ("weight-decay", ("run", "-m", "finetune", "-d", "synthetic", "--set", "model.weight_decay=-0.1"),
     "model.weight_decay must be a number >= 0, got -0.1"),
    ("val-fraction", ("run", "-m", "linear-probe", "-d", "synthetic", "--set", "model.val_fraction=1.5"),
     "model.val_fraction must be a number > 0 and < 1, got 1.5"),
    ("max-iter", ("run", "-m", "linear-probe", "-d", "synthetic", "--set", "model.max_iter=0"),
     "model.max_iter must be an integer >= 1, got 0"),
    ("warmup", ("run", "-m", "cocoop", "-d", "synthetic", "--set", "model.warmup_epochs=-1"),
     "model.warmup_epochs must be an integer >= 0, got -1"),
    ("flag-type", DC + ("--set", "model.save_checkpoint=yes"), "model.save_checkpoint must be true/false"),
    # seeds and folds
    ("seeds-negative", ZS + ("--seeds", "-1"), f"--seeds: {RANGE_SEEDS}, got [-1]"),
    ("seeds-2**32", ZS + ("--seeds", "4294967296"), f"{RANGE_SEEDS}, got [4294967296]"),
    ("seeds-huge", ZS + ("--seeds", "99999999999999999999"), f"{RANGE_SEEDS}, got [99999999999999999999]"),
    ("seeds-empty", ZS + ("--seeds", ""), "--seeds is empty"),
    ("seeds-commas", ZS + ("--seeds", ",,"), "--seeds is empty"),
    ("seeds-text", ZS + ("--seeds", "one"), "--seeds expects comma-separated integers like 1,2,3, got 'one'"),
    ("seeds-set-empty", ZS + ("--set", "protocol.seeds=[]"), f"{RANGE_SEEDS}, got []"),
    ("seeds-set-negative", ZS + ("--set", "protocol.seeds=[1,-2]"), f"{RANGE_SEEDS}, got [1, -2]"),
    ("folds-empty", ZS + ("--folds", ""), "--folds is empty: give comma-separated integers like 1,2,3, or leave "
     "--folds out"),
    ("folds-0", ZS + ("--folds", "0"), "--folds: protocol.folds must be a list of integers >= 1, got [0]"),
    ("folds-negative", ZS + ("--folds", "-1"), "protocol.folds must be a list of integers >= 1, got [-1]"),
    ("folds-text", ZS + ("--folds", "1,two"), "--folds expects comma-separated integers like 1,2,3, got '1,two'"),
    ("folds-set-type", ZS + ("--set", "protocol.folds=1"), "protocol.folds must be a list of integers >= 1"),
    # names, keys, files
    ("unknown-model", ("run", "-m", "zeroshot-clp", "-d", "synthetic"), "unknown model 'zeroshot-clp'"),
    ("unknown-dataset", ("run", "-m", "zeroshot-clip", "-d", "synthetc"), "unknown dataset 'synthetc'"),
    ("unknown-suite", ("run", "-m", "suite:papr", "-d", "synthetic"), "unknown suite 'papr'. Did you mean 'paper'?"),
    ("unknown-key", ZS + ("--set", "train.epoch=3"), "unknown key train.epoch (did you mean train.epochs?)"),
    ("unknown-section", ZS + ("--set", "trian.epochs=3"), "unknown section [trian]"),
    ("malformed-set", ZS + ("--set", "epochs"), "--set 'epochs': expected SECTION.KEY=VALUE"),
    ("type", ZS + ("--set", "train.epochs=three"), "train.epochs must be an integer >= 1 (default 50), got 'three'"),
    ("output-empty", ZS + ("--output", ""), "the output folder is empty (''): give one, e.g. --output runs"),
    ("output-file", ZS + ("--output", "FILE:a-file"), "Invalid value for '--output' / '-o': Directory 'a-file' is a file"),
    ("missing-option", ("run", "-d", "synthetic"), "Missing option '--model' / '-m'. (see `cli run -h`)"),
    ("bad-choice", ("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--executor", "k8s"),
     "Invalid value for '--executor': 'k8s' is not one of 'local', 'slurm', 'ray'"),
    ("unknown-command", ("runn",), "No such command 'runn'"),
    ("config-binary", ZS + ("--config", "FILE:binary.toml"), "binary.toml is not UTF-8 text"),
    ("config-invalid", ZS + ("--config", "FILE:invalid.toml"), "invalid.toml is not valid TOML"),
    ("config-missing", ZS + ("--config", "missing.toml"), "config file missing.toml does not exist"),
    ("config-section", ZS + ("--config", "FILE:section.toml"), "section.toml: unknown section [training]"),
    ("config-epochs", ZS + ("--config", "FILE:epochs.toml"), "epochs.toml: train.epochs must be an integer >= 1, got 0"),
    ("config-normalize", ZS + ("--config", "FILE:normalize.toml"), "normalize.toml: data.normalize must be one of"),
    ("custom-no-file", ("run", "-m", "zeroshot-clip", "-d", "custom"), "data.file must name a file, got ''"),
    ("custom-missing-file", ("run", "-m", "zeroshot-clip", "-d", "custom", "--set", "data.file=/no/clips.csv"),
     "data.file must be a file that exists, got '/no/clips.csv'"),
    ("no-such-fold", ZS + ("--set", "data.num_clips=35", "--folds", "9"),
     "dataset 'synthetic' has no fold 9; valid folds: [1, 2, 3, 4, 5]"),
    # the other commands
    ("evaluate-missing", ("evaluate", "-c", "nothing.pth", "-d", "synthetic"), "checkpoint nothing.pth does not exist"),
    ("evaluate-fold", ("evaluate", "-c", "FILE:model.pth", "-d", "synthetic", "--fold", ""), "--fold is empty"),
    ("evaluate-setting", ("evaluate", "-c", "FILE:model.pth", "-d", "synthetic", "--set", "data.normalize=x"),
     "data.normalize must be one of none, clip, got 'x'"),
    ("sweep-folds", ("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", ""), "--folds is empty"),
    ("sweep-seeds", ("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", "1", "--seeds", "-1", "--dry-run"),
     f"{RANGE_SEEDS}, got [-1]"),
    ("sweep-output", ("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", "1", "--output", "", "--dry-run"),
     "the output folder is empty"),
    ("sweep-setting", ("sweep", "-m", "zeroshot-clip", "-d", "synthetic", "--folds", "1", "--set",
                       "data.normalize=bogus", "--dry-run"), "data.normalize must be one of none, clip"),
    ("check-data-setting", ("check-data", "-d", "dfew", "--root", ".", "--set", "data.frame_order=random"),
     "data.frame_order must be one of natural, plain, got 'random'"),
    ("leaderboard-dataset", ("leaderboard", "--results", "FILE:results/", "--dataset", "nosuch"),
     "unknown dataset 'nosuch'"),
    ("leaderboard-results", ("leaderboard", "--results", "no-results"), "results directory no-results does not exist"),
    ("leaderboard-empty", ("leaderboard", "--results", ""), "--results and --out must name folders"),
]

FILES = {
    "a-file": b"not a folder",
    "binary.toml": bytes(range(256)) * 4,
    "invalid.toml": b"[train\nepochs = 2\n",
    "section.toml": b"[training]\nepochs = 2\n",
    "epochs.toml": b"[train]\nepochs = 0\n",
    "normalize.toml": b'[data]\nnormalize = "bogus"\n',
    "model.pth": b"",
}
SCANS = {"no-such-fold"}  # cases that are only found by reading the dataset (synthetic: rendered in memory)


def test_the_table_is_large_and_covers_the_reported_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.fixture
def no_work(monkeypatch):
    """Building a dataset or a CLIP model fails the test: validation must come first."""
    import dferbench.models.clip
    import dferbench_plugins.datasets.layouts
    import dferbench_plugins.synthetic.render

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the settings were validated")

    monkeypatch.setattr(dferbench.models.clip, "create_clip", forbidden)
    monkeypatch.setattr(dferbench_plugins.synthetic.render, "make_synthetic_dataset", forbidden)
    for name in ("build_dfew", "build_ferv39k", "build_mafw", "build_custom"):
        monkeypatch.setattr(dferbench_plugins.datasets.layouts, name, forbidden)


@pytest.mark.parametrize("case, args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_invocation_is_one_line_exit_2_nothing_written(case, args, message, tmp_path, monkeypatch, request):
    if case not in SCANS:
        request.getfixturevalue("no_work")
    monkeypatch.chdir(tmp_path)
    for name, content in FILES.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "results").mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [a[5:].rstrip("/") if a.startswith("FILE:") else a for a in args]
    if argv[0] in ("run", "evaluate") and "--output" not in argv:
        argv += ["--output", "out"]
    res = CliRunner().invoke(cli, argv)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert message in lines[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
