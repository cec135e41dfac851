"""Issue 22 item 13 and issue 23's one error path: each of these ended in a raw traceback with exit status 1
(the status the docs reserve for "some images failed"); each must be one ``error:`` line with status 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "a.png"
    path.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def saved_model(tmp_path: Path) -> Path:
    from chadavit.models import create_model, save_pretrained

    return save_pretrained(create_model("chada_vit_nano", depth=1, img_size=32, patch_size=16), tmp_path / "m")


def _embed(image: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["embed", str(image), "--out", str(tmp_path / "o.parquet"), "--no-progress", *extra]


@pytest.mark.parametrize("spec, expected", [
    ("random:chada_vit_nano,depth=x", "depth must be an integer, got 'x'"),
    ("random:chada_vit_nano,patch_size=0", "patch_size must be a positive integer, got 0"),
    ("random:chada_vit_nano,embed_dim=abc", "embed_dim must be an integer, got 'abc'"),
    ("random:chada_vit_nano,qkv_bias=3", "qkv_bias must be true or false"),
    ("random:chada_vit_nano,drop_path_rate=2", "drop_path_rate must be in [0, 1)"),
    ("hf:../..", "expected hf:OWNER/NAME"),
    ("hf:owner/..", "expected hf:OWNER/NAME"),
])
def test_bad_model_spec_is_one_line(spec: str, expected: str, image: Path, tmp_path: Path, cli_error) -> None:
    line = cli_error(_embed(image, tmp_path, "--model", spec))
    assert expected in line and spec in line
    assert not (tmp_path / "o.parquet").exists()


def test_bad_model_override_in_a_pretraining_config_is_one_line(tmp_path: Path, cli_error) -> None:
    line = cli_error(["pretrain", "--print-config", "model.overrides.embed_dim=abc"])
    assert "model.overrides: embed_dim must be an integer" in line
    assert "model.name 'nope' is not a preset" in cli_error(["pretrain", "--print-config", "model.name=nope"])


def test_truncated_weights_are_one_line(saved_model: Path, image: Path, tmp_path: Path, cli_error) -> None:
    weights = saved_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # an interrupted download
    line = cli_error(_embed(image, tmp_path, "--model", str(saved_model)))
    assert "model.safetensors: unreadable safetensors file" in line and "interrupted" in line


def test_truncated_official_safetensors_is_one_line(image: Path, tmp_path: Path, cli_error) -> None:
    official = tmp_path / "backbone.safetensors"
    official.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    assert "unreadable safetensors file" in cli_error(_embed(image, tmp_path, "--model", str(official)))


@pytest.mark.parametrize("text, expected", [("{\"config\": {\"embed_dim\": 6", "not valid JSON"),
                                            ("[1, 2]", "expected a JSON object"),
                                            ("{\"config\": {\"depth\": \"two\"}}", "depth must be an integer")])
def test_invalid_config_json_is_one_line(text: str, expected: str, saved_model: Path, image: Path, tmp_path: Path,
                                         cli_error) -> None:
    (saved_model / "config.json").write_text(text)
    line = cli_error(_embed(image, tmp_path, "--model", str(saved_model)))
    assert expected in line and "config.json" in line


@pytest.mark.parametrize("device, expected", [("nonsense", "--device 'nonsense' is not a device"),
                                              ("cuda:7", "--device cuda:7 is not available")])
def test_bad_device_is_one_line_before_the_model_loads(device: str, expected: str, image: Path, tmp_path: Path,
                                                       cli_error, monkeypatch: pytest.MonkeyPatch) -> None:
    from chadavit.models import spec

    monkeypatch.setattr(spec, "load_model_from_spec", lambda *a, **k: pytest.fail("model loaded before the check"))
    assert expected in cli_error(_embed(image, tmp_path, "--model", "random:chada_vit_nano", "--device", device))
    assert expected.replace("--device", "train.device") in cli_error(
        ["pretrain", f"train.device={device}", f"train.out_dir={tmp_path / 'run'}"])
    assert expected in cli_error(["eval", "--device", device, "--out", str(tmp_path / "e")])


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody may write in: /sys refuses even root; elsewhere a chmod 555 folder when not root."""
    if os.path.isdir("/sys") and _refuses(Path("/sys")):
        return Path("/sys")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if not _refuses(folder):
        pytest.skip("no read-only folder available here (root on a system without a read-only /sys)")
    return folder


def _refuses(folder: Path) -> bool:
    try:
        (folder / ".probe-test").write_bytes(b"x")
    except OSError:
        return True
    (folder / ".probe-test").unlink()
    return False


@pytest.mark.parametrize("option", ["--out", "--h5ad"])
def test_read_only_output_is_refused_before_the_model_loads(option: str, image: Path, tmp_path: Path, cli_error,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if option == "--h5ad":
        pytest.importorskip("anndata", reason="--h5ad needs anndata")
    from chadavit.models import spec

    monkeypatch.setattr(spec, "load_model_from_spec", lambda *a, **k: pytest.fail("model loaded before the check"))
    target = _read_only_folder(tmp_path) / ("x.h5ad" if option == "--h5ad" else "x.parquet")
    argv = ["embed", str(image), "--model", "random:chada_vit_nano", "--no-progress",
            "--out", str(target if option == "--out" else tmp_path / "o.parquet")]
    if option == "--h5ad":
        argv += ["--h5ad", str(target)]
    line = cli_error(argv)
    assert f"{option} {target}: cannot write in {target.parent}" in line
    assert not list(tmp_path.glob("o.parquet*"))


def test_writable_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    from chadavit.atomic import check_writable

    check_writable(tmp_path / "new" / "deeper" / "x.parquet")
    check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_broken_suite_yaml_is_one_line(tmp_path: Path, cli_error) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [\n  {name: a\n")
    line = cli_error(["eval", "--suite", str(suite), "--out", str(tmp_path / "e")])
    assert f"{suite}: not valid YAML at line" in line
    suite.write_bytes(b"\xff\xfe name")
    assert "cannot read the suite file" in cli_error(["eval", "--suite", str(suite), "--out", str(tmp_path / "e")])


def test_saved_config_round_trips_with_coercion(tmp_path: Path) -> None:
    """Coercion is the config loader's one rule (chadavit.config.coerce): 32.0 for an integer is 32, "1e-5" for a
    number is 1e-5, "yes" is true; 2.5 or the string "32" for an integer is refused, naming the field."""
    from chadavit.models import ChadaViTConfig
    from chadavit.models.config import ModelConfigError

    cfg = ChadaViTConfig(embed_dim=32.0, depth=2, num_heads=4, channel_vocab=("DNA",), norm_eps="1e-5",
                         qkv_bias="yes")
    assert (cfg.embed_dim, cfg.depth, cfg.channel_vocab, cfg.norm_eps, cfg.qkv_bias) == (32, 2, ["DNA"], 1e-5, True)
    assert isinstance(cfg.embed_dim, int)
    assert ChadaViTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ModelConfigError, match="depth must be an integer, got 2.5"):
        ChadaViTConfig(depth=2.5)
    with pytest.raises(ModelConfigError, match="embed_dim must be an integer, got '32'"):
        ChadaViTConfig(embed_dim="32")
    with pytest.raises(ModelConfigError, match="qkv_bias must be true or false, got 3"):
        ChadaViTConfig(qkv_bias=3)
    with pytest.raises(ModelConfigError, match="channel_vocab must be a list"):
        ChadaViTConfig(channel_vocab="auto")
