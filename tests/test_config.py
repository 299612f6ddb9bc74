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
    with pytest.raises(DferbenchError, match=r"x.toml: unknown key model.lrr; valid keys in \[model\]: depth, flag, lr, text"):
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
    with pytest.raises(DferbenchError, match="protocol.selection must be one of last_epoch, best_on_test"):
        cfg.validate(cfg.apply_overrides(base(), ["protocol.selection=best"]))
