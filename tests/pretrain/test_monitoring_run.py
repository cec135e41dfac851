"""A training run never goes wrong silently: collapse signals, progress in logs, bad input, NaN losses, re-runs."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from chadavit.errors import ChadavitError
from chadavit.pretrain.checkpoint import load_checkpoint
from chadavit.pretrain.failures import DatasetTooSmallError, NonFiniteLossError
from chadavit.pretrain.report import format_run_summary
from chadavit.pretrain.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402

SIGNALS = ("teacher_entropy", "entropy_ratio", "kl_teacher_student", "emb_mean_cos", "emb_std")
# teacher and student both at temperature 1 on bounded cosine logits: both are nearly uniform from step 1 on,
# the loss sits at ln(out_dim) - the "uniform" collapse of a DINO run
UNIFORM = ["dino.teacher_temp=1.0", "dino.warmup_teacher_temp=1.0", "dino.student_temp=1.0", "optim.warmup_epochs=0"]


def _strict_json(path: Path):
    def no_nan(token):
        raise AssertionError(f"{path} holds {token}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def test_signals_logged_progress_plain_and_summary_valid(tmp_path, capsys):
    out = tmp_path / "run"
    s = train(tiny_config(out, "train.epochs=1", "train.progress=true", "train.progress_every_s=0"))
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(recs) == 6
    for r in recs:
        assert all(isinstance(r[k], float) and math.isfinite(r[k]) for k in SIGNALS), r
        assert 0 < r["entropy_ratio"] <= 1 and -1 <= r["emb_mean_cos"] <= 1 and r["emb_std"] >= 0
    stdout = capsys.readouterr().out  # captured: not a terminal, so plain lines and no tqdm bar
    lines = [x for x in stdout.splitlines() if x.startswith("pretrain step")]
    assert len(lines) == 6 and "\r" not in stdout and "\x1b" not in stdout
    assert "pretrain step 6/6 (100%) | loss " in lines[-1] and "H/lnK" in lines[-1] and "cos" in lines[-1]
    summary = _strict_json(out / "summary.json")
    assert summary["collapsed"] is False and summary["last_metrics"]["step"] == 6
    text = format_run_summary(s)
    assert "no collapse detected" in text and "nan" not in text.lower() and "{" not in text


def test_collapse_warns_once_in_clear_words(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    out = tmp_path / "flat"
    s = train(tiny_config(out, *UNIFORM, "train.epochs=1", "train.collapse_patience=3"))
    warnings = [r.getMessage() for r in caplog.records if "COLLAPSED" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "ln(out_dim)" in warnings[0] and "teacher_temp" in warnings[0] and "optim.lr" in warnings[0]
    assert s["steps"] == 6 and s["collapsed"] is True and s["stopped"] is None
    assert "verdict: COLLAPSED" in format_run_summary(s)
    assert _strict_json(out / "summary.json")["collapsed"] is True


def test_stop_on_collapse_saves_and_stops(tmp_path, capsys):
    from chadavit.cli.main import main

    out = tmp_path / "stop"
    args = ["pretrain", *tiny_config_args(out), *UNIFORM, "train.epochs=2", "train.collapse_patience=3",
            "train.stop_on_collapse=true"]
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "COLLAPSED - stopped early by train.stop_on_collapse" in printed and '"steps"' not in printed
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
    summary = _strict_json(out / "summary.json")
    assert summary["steps"] == 3 and summary["stopped"] == "collapse"


def tiny_config_args(out: Path) -> list[str]:
    from tiny import TINY

    return ["--config", "demo", *TINY, f"train.out_dir={out}"]


def test_dataset_smaller_than_one_batch_is_a_one_line_error(tmp_path, capsys):
    from chadavit.cli.main import main

    out = tmp_path / "small"
    args = ["pretrain", *tiny_config_args(out), "data.synthetic.images_per_study=2"]  # 3 studies x 2 < batch 8
    try:
        code = main(args)
    except DatasetTooSmallError as exc:
        msg = str(exc)
    else:
        assert code == 2
        msg = capsys.readouterr().err.strip()
    assert "6 images" in msg and "fewer than one global batch of 8" in msg and "data.batch_size" in msg
    assert "\n" not in msg.strip() and "Traceback" not in msg


def test_nan_loss_stops_naming_step_and_last_checkpoint(tmp_path, monkeypatch):
    from chadavit.pretrain import trainer

    real = trainer.DINOLoss.forward
    calls = {"n": 0}

    def flaky(self, s, t, temp):
        calls["n"] += 1
        loss = real(self, s, t, temp)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(trainer.DINOLoss, "forward", flaky)
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as info:
        train(tiny_config(out, "train.epochs=2", "train.checkpoint_every=2"))
    msg = str(info.value)
    assert isinstance(info.value, ChadavitError)
    assert "nan at step 4" in msg and f"{out / 'checkpoint.pt'} (step 2)" in msg
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2
    assert not (out / "summary.json").exists()
    assert "NaN" not in (out / "metrics.jsonl").read_text()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    s = train(tiny_config(out, "train.epochs=1"))
    return out, s


def test_rerun_of_finished_run_reports_it_and_keeps_the_summary(finished_run, tmp_path):
    src, first = finished_run
    out = tmp_path / "again"
    shutil.copytree(src, out)
    before = (out / "summary.json").read_bytes()
    ck_before = (out / "checkpoint.pt").stat().st_mtime_ns
    s = train(tiny_config(out, "train.epochs=1"))
    assert s["already_finished"] is True and s["steps"] == first["steps"]
    assert s["final_loss"] == pytest.approx(first["final_loss"])
    assert s["train_img_s"] == pytest.approx(first["train_img_s"])
    assert (out / "summary.json").read_bytes() == before
    assert (out / "checkpoint.pt").stat().st_mtime_ns == ck_before
    text = format_run_summary(s)
    assert "already holds a finished run" in text and "nan" not in text.lower()


def test_rerun_repairs_a_summary_holding_nan(finished_run, tmp_path):
    src, first = finished_run
    out = tmp_path / "old"
    shutil.copytree(src, out)
    (out / "summary.json").write_text('{"steps": 6, "final_loss": NaN, "train_img_s": NaN}')
    s = train(tiny_config(out, "train.epochs=1"))
    summary = _strict_json(out / "summary.json")
    assert summary["final_loss"] == pytest.approx(first["final_loss"]) and summary["already_finished"] is True
    assert summary["train_img_s"] is None and s["final_loss"] == summary["final_loss"]
    a, b = s["_teacher"].state_dict(), first["_teacher"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the finished weights, untouched


def test_demo_rerun_into_the_same_folder_reports_the_finished_run(tmp_path):
    from tiny import TINY

    from chadavit.experiments.demo import format_summary, run_demo

    over = [x for x in TINY if not x.startswith("train.progress")] + ["train.epochs=1"]
    first = run_demo(tmp_path / "demo", over, progress=False)
    again = run_demo(tmp_path / "demo", over, progress=False)
    assert again["already_finished"] is True and again["final_loss"] == first["final_loss"]
    for s in (first, again):
        text = format_summary(s)
        assert "nan" not in text.lower() and "no collapse detected" in text
    assert "already holds a finished run" in format_summary(again)
    assert _strict_json(tmp_path / "demo" / "demo_summary.json")["already_finished"] is True
    assert _strict_json(tmp_path / "demo" / "pretrain" / "summary.json")["final_loss"] == first["final_loss"]
