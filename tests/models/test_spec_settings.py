"""Model specs: official-checkpoint settings said and settable everywhere; pretraining runs accepted directly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from chadavit.cli.main import main
from chadavit.errors import ChadavitError
from chadavit.models import create_model, load_official_checkpoint, save_pretrained
from chadavit.models.config import ModelConfigError, check_num_heads
from chadavit.models.spec import load_model_from_spec, split_official_options, with_official_options

DIVISORS_192 = "1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 192"


@pytest.fixture
def backbone(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "official_chadavit" / "official_backbone.safetensors"



def test_spec_options_parse_and_merge() -> None:
    assert split_official_options("official:a.ckpt:teacher,num_heads=2,final_norm_eps=1e-6") == (
        "official:a.ckpt:teacher", {"num_heads": 2, "final_norm_eps": 1e-6})
    assert with_official_options("official:a.ckpt", 2, None) == "official:a.ckpt,num_heads=2"
    assert with_official_options("official:a.ckpt,num_heads=4", 2, 1e-6) == \
        "official:a.ckpt,num_heads=4,final_norm_eps=1e-06"
    assert with_official_options("b.safetensors", None, 1e-6) == "b.safetensors,final_norm_eps=1e-06"
    for spec in ("random:chada_vit_nano,num_heads=4", "runs/x", "pixels"):
        assert with_official_options(spec, 2, 1e-6) == spec
    with pytest.raises(ChadavitError, match="is not a number"):
        split_official_options("official:a.ckpt,num_heads=two")


def test_invalid_head_count_lists_the_divisors() -> None:
    with pytest.raises(ModelConfigError) as info:
        check_num_heads(192, 5)
    assert str(info.value) == f"num_heads 5 does not divide the embedding width 192; valid head counts: {DIVISORS_192}"


def test_official_settings_in_the_spec(backbone: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        default = load_model_from_spec(str(backbone))
    assert "num_heads=12, final_norm_eps=1e-05 (num_heads, final_norm_eps assumed" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        two = load_model_from_spec(f"official:{backbone},num_heads=2,final_norm_eps=1e-6")
    assert "num_heads=2, final_norm_eps=1e-06 (as given)" in caplog.text
    assert (default.config.num_heads, two.config.num_heads, two.config.final_norm_eps) == (12, 2, 1e-6)
    ref = load_official_checkpoint(backbone, num_heads=2, final_norm_eps=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), two.state_dict().values()))
    from chadavit.evaluation.features import load_model_spec

    assert load_model_spec(f"official:{backbone},num_heads=2").label == \
        "official:official_backbone,num_heads=2"  # eval tables tell 2 from 12 heads
    assert load_model_spec(str(backbone)).label == "official:official_backbone"
    # keyword arguments (the CLI flags) apply, options in the spec win
    assert load_model_from_spec(f"official:{backbone},num_heads=4", num_heads=2).config.num_heads == 4


def test_cli_num_heads_everywhere(backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  cli_error) -> None:
    for argv in (["convert-official", str(backbone), str(tmp_path / "c"), "--num-heads", "5"],
                 ["embed", str(tmp_path), "--model", str(backbone), "--num-heads", "5", "--out", str(tmp_path / "e")],
                 ["eval", "--model", f"official:{backbone}", "--num-heads", "5", "--out", str(tmp_path / "v")]):
        msg = cli_error(argv)
        assert f"num_heads 5 does not divide the embedding width 192; valid head counts: {DIVISORS_192}" in msg
    assert not (tmp_path / "e.parquet").exists() and not (tmp_path / "c").exists()
    assert main(["convert-official", str(backbone), str(tmp_path / "c2"), "--num-heads", "2",
                 "--final-norm-eps", "1e-6"]) == 0
    out = capsys.readouterr().out
    assert "heads 2, final-norm eps 1e-06" in out
    mode = (tmp_path / "c2" / "model.safetensors").stat().st_mode & 0o777
    assert mode == 0o644, oct(mode)


def test_pretraining_run_folder_and_training_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = create_model("chada_vit_nano")
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: {name: chada_vit_nano}\n")
    state = {"teacher": {**{f"backbone.{k}": v for k, v in teacher.state_dict().items()},
                         "head.last.weight": torch.zeros(2, 2)},
             "student": {}, "step": 7,
             "config": {"model": {"name": "chada_vit_nano", "overrides": {}}, "data": {"normalization": "auto"}}}
    torch.save(state, run / "checkpoint.pt")
    for spec in (run, run / "checkpoint.pt"):
        got = load_model_from_spec(str(spec))
        assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), got.state_dict().values()))
    torch.manual_seed(1)
    final = create_model("chada_vit_nano")
    save_pretrained(final, run / "backbone")  # a finished run: its backbone/ is what the folder means
    got = load_model_from_spec(str(run))
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(), got.state_dict().values()))
    with pytest.raises(ChadavitError, match=r"backbone/ or checkpoint.pt"):
        load_model_from_spec(str(tmp_path / "runs"))


def test_legacy_training_checkpoint_with_auto_vocabulary_is_refused_not_guessed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {name: chada_vit_nano}\n")
    model = create_model("chada_vit_nano", channel_embedding="identity", channel_vocab=["DNA", "GFP"])
    state = {"teacher": {f"backbone.{k}": v for k, v in model.state_dict().items()}, "student": {}, "step": 3,
             "config": {"model": {"name": "chada_vit_nano",
                                  "overrides": {"channel_embedding": "identity", "channel_vocab": "auto"}},
                        "data": {"normalization": "dataset"}}}
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(ChadavitError, match=r"predates stored encoder configs.*backbone/"):
        load_model_from_spec(str(run / "checkpoint.pt"))
