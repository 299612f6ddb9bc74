import pytest

from dferbench.run import config as cfg
from dferbench.errors import DferbenchError


def base():
    out = {k: dict(v) for k, v in cfg.CORE_DEFAULTS.items()}
    out["model"] = {"lr": 0.1, "text": "descriptors", "depth": 1, "flag": False}
    return out


def test_merge_checks_keys_and_types():
    c = cfg.merge(base(), {"model": {"lr": 1, "depth": 2}}, "x.toml")
    assert c["model"]["lr"] == 1.0 and isinstance(c["model"]["lr"], float)
    with pytest.raises(DferbenchError, match=r"x.toml: unknown key model.lrr \(did you mean model.lr\?\); valid keys in \[model\]: depth, flag, lr, text"):
        cfg.merge(base(), {"model": {"lrr": 1}}, "x.toml")
    with pytest.raises(DferbenchError, match="model.depth must be an integer"):
        cfg.merge(base(), {"model": {"depth": "two"}}, "x.toml")
    with pytest.raises(DferbenchError, match="model.flag must be true/false"):
        cfg.merge(base(), {"model": {"flag": 1}}, "x.toml")
    with pytest.raises(DferbenchError, match=r"unknown section \[modle\]"):
        cfg.merge(base(), {"modle": {}}, "x.toml")


def test_overrides_parse_toml_values_and_bare_strings():
    c = cfg.apply_overrides(base(), ["model.lr=0.5", "model.text=photo-of", "protocol.seeds=[1,2]", "model.flag=true"])
    assert c["model"] == {"lr": 0.5, "text": "photo-of", "depth": 1, "flag": True}
    assert c["protocol"]["seeds"] == [1, 2]
    with pytest.raises(DferbenchError, match="expected SECTION.KEY=VALUE"):
        cfg.apply_overrides(base(), ["lr=0.5"])


def test_malformed_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nlr = 1")
    with pytest.raises(DferbenchError, match="bad.toml is not valid TOML"):
        cfg.read_toml(bad)
    with pytest.raises(DferbenchError, match="does not exist"):
        cfg.read_toml(tmp_path / "missing.toml")


def test_hash_ignores_non_semantic_keys_and_variants_name_differences():
    a = base()
    b = cfg.apply_overrides(a, ["protocol.folds=[1]", "data.workers=4", "train.device=\"cpu\""])
    assert cfg.config_hash(a) == cfg.config_hash(b)
    c = cfg.apply_overrides(a, ["model.text=photo-of", "train.epochs=3"])
    assert cfg.config_hash(a) != cfg.config_hash(c)
    assert cfg.variant_label(c, a) == "text=photo-of,train.epochs=3"
    assert cfg.variant_label(cfg.apply_overrides(a, ["protocol.selection=best_on_test"]), a) == ""


def test_validate_selection_policy():
    with pytest.raises(DferbenchError, match="--set protocol.selection=best: protocol.selection must be one of "
                                             "last_epoch, best_on_test, got 'best'"):
        cfg.apply_overrides(base(), ["protocol.selection=best"])
    config = base()
    config["protocol"]["selection"] = "best"  # set around merge: the final check still sees it
    with pytest.raises(DferbenchError, match="protocol.selection must be one of"):
        cfg.validate(config)


def test_option_types_ranges_lists_and_checks():
    spec = {"model": {"n": cfg.Option(8, ge=1), "t": cfg.Option(0.01, gt=0), "mode": cfg.Option("a", choices=("a", "b")),
                      "ids": cfg.Option([1], item=cfg.Option(0, ge=0, lt=10), nonempty=True),
                      "name": cfg.Option("x", check=lambda v: None if v.islower() else f"must be lower case, got {v!r}"),
                      "flag": False}}
    base_config = cfg.defaults(spec)

    def error(key, value):
        with pytest.raises(DferbenchError) as err:
            cfg.merge(base_config, {"model": {key: value}}, "here", spec)
        return str(err.value)

    assert error("n", 0) == "here: model.n must be an integer >= 1, got 0"
    assert error("n", 1.5) == "here: model.n must be an integer >= 1 (default 8), got 1.5"
    assert error("t", 0) == "here: model.t must be a number > 0, got 0.0"
    assert error("t", float("nan")) == "here: model.t must be a finite number, got nan"
    assert error("mode", "c") == "here: model.mode must be one of a, b, got 'c'"
    assert error("ids", []) == "here: model.ids must be a non-empty list of integers >= 0 and < 10, got []"
    assert error("ids", [3, 10]) == "here: model.ids must be a non-empty list of integers >= 0 and < 10, got [3, 10]"
    assert error("ids", [True]).endswith("got [True]")
    assert error("name", "X") == "here: model.name must be lower case, got 'X'"
    assert error("flag", 1) == "here: model.flag must be true/false (default False), got 1"
    ok = cfg.merge(base_config, {"model": {"n": 1, "t": 2, "ids": [0, 9], "name": "y"}}, "here", spec)
    assert ok["model"]["t"] == 2.0 and isinstance(ok["model"]["t"], float)


def test_plugin_plain_values_change_only_the_default_of_core_options():
    spec = cfg.extend(cfg.CORE_OPTIONS, "data", {"augmentation": "none", "file": cfg.Option("", path=True)}, "plugin x")
    assert spec["data"]["augmentation"].default == "none" and spec["data"]["augmentation"].choices
    assert spec["data"]["file"].path
    with pytest.raises(DferbenchError, match="plugin x sets data.num_frames to 0; it must be an integer >= 1"):
        cfg.extend(cfg.CORE_OPTIONS, "data", {"num_frames": 0}, "plugin x")


def test_execution_settings_and_files_in_variants_and_hashes(tmp_path):
    spec = cfg.extend(cfg.CORE_OPTIONS, "model", {"save": cfg.Option(False, execution=True),
                                                  "text": cfg.Option("names", path=True)}, "m")
    ref = cfg.defaults(spec)
    saving = cfg.merge(ref, {"model": {"save": True}}, "x", spec)
    assert cfg.variant_label(saving, ref, spec) == ""
    assert cfg.config_hash(saving, spec) == cfg.config_hash(ref, spec)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "desc.toml").write_text("[descriptors]\nx = 'y'\n")
    at_a = cfg.merge(ref, {"model": {"text": f"file:{tmp_path / 'a' / 'desc.toml'}"}}, "x", spec)
    at_b = cfg.merge(ref, {"model": {"text": f"file:{tmp_path / 'b' / 'desc.toml'}"}}, "x", spec)
    label = cfg.variant_label(at_a, ref, spec)
    assert label.startswith("text=file:desc.toml#") and len(label) == len("text=file:desc.toml#") + 8
    assert label == cfg.variant_label(at_b, ref, spec)  # the same file elsewhere: the same variant
    assert cfg.config_hash(at_a, spec) == cfg.config_hash(at_b, spec)
    (tmp_path / "b" / "desc.toml").write_text("[descriptors]\nx = 'z'\n")
    assert cfg.variant_label(cfg.merge(ref, {"model": {"text": f"file:{tmp_path / 'b' / 'desc.toml'}"}}, "x", spec),
                             ref, spec) != label


def test_core_choices_match_the_code_that_reads_them():
    from dferbench.data.loader import PIPELINES
    from dferbench.data.transforms import AUGMENTATIONS, NORMALIZATIONS
    from dferbench.run.engine import PRECISIONS

    assert cfg.PIPELINES == PIPELINES and cfg.PRECISIONS == PRECISIONS
    assert cfg.NORMALIZATIONS == NORMALIZATIONS and cfg.AUGMENTATIONS == ("auto", *AUGMENTATIONS)


def test_bad_config_files_are_named(tmp_path):
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(DferbenchError, match="weights.bin is not UTF-8 text"):
        cfg.read_toml(binary)
