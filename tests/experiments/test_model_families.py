"""Every model family pretrains with the same command: `chadavit pretrain --config ... model.name=...`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from chadavit.cli.main import main
from chadavit.models import load_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pretrain"))
from tiny import TINY  # noqa: E402

SETS = "data.synthetic.channel_sets=[[DNA,protein],[DNA,protein,membrane],[protein],[DNA,protein,membrane,ER]]"
SMALL = "{embed_dim: 32, depth: 1, num_heads: 2, mlp_dim: 64, img_size: 32, patch_size: 8}"


def _pretrain(out: Path, *extra: str) -> dict:
    args = ["pretrain", "--config", "demo", *TINY, SETS, "train.max_steps=2", f"model.overrides={SMALL}",
            f"train.out_dir={out}", *extra]
    assert main(args) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("name,extra,images", [
    ("chada_vit_nano", [], 4 * 16),
    ("inter_channel_vit_moyen", [], 4 * 16),
    ("one_channel_vit_tiny", ["data.split_channels=true"], (2 + 3 + 1 + 4) * 16),  # one image per channel
    ("fixed_channel_vit_tiny", ["data.filter.n_channels=3", "model.overrides.in_chans=3"], 16),  # 3-channel study only
])
def test_family_runs_dino_steps(tmp_path, name, extra, images):
    s = _pretrain(tmp_path / name, f"model.name={name}", *extra)
    assert s["steps"] == 2 and math.isfinite(s["final_loss"])
    assert s["steps_per_epoch"] == images // 8
    model = load_pretrained(tmp_path / name / "backbone")
    assert model.config.architecture == {"chada_vit_nano": "chada_vit", "inter_channel_vit_moyen": "inter_channel_vit",
                                   "one_channel_vit_tiny": "one_channel_vit",
                                   "fixed_channel_vit_tiny": "fixed_channel_vit"}[name]


def test_channel_name_filter_and_refused_resume_with_another_filter(tmp_path, capsys):
    out = tmp_path / "named"
    s = _pretrain(out, "data.filter.channel_names=[DNA,protein]")
    assert s["steps_per_epoch"] == 16 // 8
    assert main(["pretrain", "--config", "demo", *TINY, SETS, "train.max_steps=3", f"model.overrides={SMALL}",
                 f"train.out_dir={out}", "data.filter.channel_names=[protein]"]) == 2
    assert "different 'data' config" in capsys.readouterr().err


def test_filter_that_keeps_nothing_fails_before_training(tmp_path, capsys):
    assert main(["pretrain", "--config", "demo", *TINY, SETS, f"train.out_dir={tmp_path / 'x'}",
                 "data.filter.n_channels=7"]) == 2
    err = capsys.readouterr().err
    assert "keeps no image" in err and "3 ch: 16 images" in err
