"""Presets, overrides and clear config errors before any work starts."""

from __future__ import annotations

import pytest

from chadavit.cli.main import main
from chadavit.data.dataset import DatasetError
from chadavit.pretrain.config import ConfigError, list_presets, load_config
from chadavit.pretrain.trainer import train


def test_presets_load_and_overrides_apply():
    assert {"demo", "base"} <= set(list_presets())
    assert "eval_synthetic" not in list_presets()
    cfg = load_config("demo", ["train.epochs=3", "optim.lr=1e-3", "augment.global_scale=[0.5,1]",
                               "model.overrides.depth=2", "data.paths=[a,b]", "train.compile=true"])
    assert cfg.train.epochs == 3 and cfg.optim.lr == 1e-3
    assert cfg.augment.global_scale == (0.5, 1.0)
    assert cfg.model.overrides["depth"] == 2 and cfg.data.paths == ["a", "b"] and cfg.train.compile is True
    base = load_config("base")
    assert base.model.name != "chada_vit_nano"


def test_yaml_file_with_base(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: demo\ntrain:\n  epochs: 2\n")
    cfg = load_config(str(f))
    assert cfg.train.epochs == 2 and cfg.data.paths == ["builtin:demo"]


@pytest.mark.parametrize("override, message", [
    ("train.epocs=3", "valid keys in train: epochs"),
    ("trian.epochs=3", "valid keys: name, data"),
    ("train.epochs=three", "must be an integer"),
    ("train.epochs", "key=value"),
    ("optim.lr=-1", "optim.lr must be > 0"),
    ("augment.local_scale=[0.5,0.1]", "local_scale"),
    ("train", "key=value"),
    ("train=3", "is a section"),
])
def test_override_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo", [override])


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="presets: .*demo"):
        load_config("no_such_preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml.*epochz"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))


def test_missing_dataset_fails_before_work(tmp_path):
    cfg = load_config("demo", [f"data.paths=[{tmp_path / 'nowhere'}]", f"train.out_dir={tmp_path / 'run'}"])
    with pytest.raises(DatasetError, match="nowhere"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_cli_reports_config_error(capsys):
    assert main(["pretrain", "--config", "demo", "train.epocs=1"]) == 2
    assert "valid keys in train" in capsys.readouterr().err
    assert main(["pretrain", "--list"]) == 0
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize(("amp", "precision"), [("auto", "auto"), ("bf16", "bf16"), ("off", "fp32")])
def test_legacy_amp_key_reads_as_precision(tmp_path, caplog, amp, precision):
    """Run folders written before ``train.precision`` replaced ``train.amp`` still load (resume reads them)."""
    old = tmp_path / "config.yaml"
    old.write_text(f"base: demo\ntrain:\n  amp: {amp}\n  precision: ''\n")
    with caplog.at_level("WARNING", logger="chadavit.pretrain.config"):
        assert load_config(str(old)).train.precision == precision
    assert "train.amp is deprecated" in caplog.text
    assert load_config("demo", ["train.amp=off"]).train.precision == "fp32"
    with pytest.raises(ConfigError, match="train.amp"):
        load_config("demo", ["train.amp=fp16"])
