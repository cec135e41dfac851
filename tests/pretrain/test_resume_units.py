"""Resume and monitoring as units: the checkpoint's content and restore, the NaN stop's words, the run tracker."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import pytest
import torch

from chadavit.pretrain.checkpoint import ResumeError, load_checkpoint
from chadavit.pretrain.loader import MultiCropBatch
from chadavit.pretrain.method import DinoMethod
from chadavit.pretrain.net import build_backbone
from chadavit.pretrain.resume import Checkpointer, restore
from chadavit.pretrain.tracker import RunTracker

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402

KEYS = {"student", "teacher", "optimizer", "center", "step", "epoch", "steps_per_epoch", "config", "world_size",
        "backbone_config"}


def _method(cfg, seed: int = 0):
    torch.manual_seed(seed)
    method = DinoMethod(cfg, build_backbone(cfg), torch.device("cpu"))
    return method, torch.optim.AdamW(method.param_groups, lr=0.0)


def test_checkpoint_holds_the_run_and_restores_it_exactly(tmp_path):
    cfg = tiny_config(tmp_path / "run")
    method, opt = _method(cfg)
    method.loss_fn.center.fill_(0.5)
    path = tmp_path / "run" / "checkpoint.pt"
    stats = {"DNA": [0.0, 1.0]}
    ck = Checkpointer(path, cfg, method, opt, steps_per_epoch=6, world=1, is_main=True, stats=stats)
    assert ck.last_saved is None
    ck.save(9)
    assert ck.last_saved == 9
    state = load_checkpoint(path)  # weights_only=True: plain types and tensors only
    assert set(state) == KEYS | {"normalization_stats"}
    assert state["step"] == 9 and state["epoch"] == 1 and state["normalization_stats"] == stats
    assert state["backbone_config"] == method.teacher.backbone.config.to_dict()
    assert "normalization_stats" not in Checkpointer(path, cfg, method, opt, 6, 1, True).state(9)

    other, other_opt = _method(cfg, seed=3)
    assert restore(None, other, other_opt, 6, path) == 0
    assert restore(state, other, other_opt, 6, path) == 9
    assert torch.equal(other.loss_fn.center, method.loss_fn.center)
    assert all(torch.equal(a, b) for a, b in zip(other.teacher.parameters(), method.teacher.parameters()))
    with pytest.raises(ResumeError, match=r"checkpoint.pt: steps per epoch changed \(6 -> 5\)"):
        restore(state, other, other_opt, 5, path)


def test_other_ranks_write_nothing_but_remember_the_step(tmp_path):
    cfg = tiny_config(tmp_path / "run")
    method, opt = _method(cfg)
    ck = Checkpointer(tmp_path / "c.pt", cfg, method, opt, 4, 2, is_main=False)
    ck.save(4)
    assert ck.last_saved == 4 and not (tmp_path / "c.pt").exists()


def test_nan_stop_names_the_last_good_checkpoint_or_says_there_is_none(tmp_path):
    cfg = tiny_config(tmp_path / "run")
    method, opt = _method(cfg)
    ck = Checkpointer(tmp_path / "run" / "checkpoint.pt", cfg, method, opt, 4, 1, True)
    msg = str(ck.nan_error(tmp_path / "run", float("nan"), 3))
    assert "the DINO loss is nan at step 3" in msg and "no checkpoint was saved yet" in msg
    ck.save(2)
    msg = str(ck.nan_error(tmp_path / "run", float("inf"), 5))
    assert "inf at step 5" in msg and f"{tmp_path / 'run' / 'checkpoint.pt'} (step 2)" in msg
    msg = str(ck.nan_error(tmp_path / "run", float("nan"), 6, {"dino": 5.2, "koleo": float("nan")}))
    assert "the training loss (dino + koleo; not finite: koleo) is nan at step 6" in msg  # not "the DINO loss"
    assert "the DINO loss is nan" in str(ck.nan_error(tmp_path / "run", float("nan"), 7, {"dino": float("nan")}))


def _batch(n: int = 4, skipped: tuple[str, ...] = ()) -> MultiCropBatch:
    return MultiCropBatch(None, None, n, torch.arange(n), list(skipped))  # type: ignore[arg-type]


SCHEDULE = {"lr": 0.1, "wd": 0.04, "momentum": 0.99, "teacher_temp": 0.04, "grad_norm": 1.0}


def test_tracker_logs_on_its_steps_and_counts_throughput(tmp_path, caplog):
    cfg = tiny_config(tmp_path, "train.log_every=3")
    tr = RunTracker(cfg, tmp_path, step=0, stop_step=7, steps_per_epoch=4, is_main=True)
    assert [s for s in range(7) if tr.log_due(s)] == [0, 2, 5, 6]
    with caplog.at_level(logging.WARNING):
        tr.got_batch(_batch(skipped=("a.tif: truncated",)), waited_s=0.5)
    assert tr.skipped == 1 and tr.wait_time == 0.5 and "a.tif: truncated" in caplog.text
    for step in (1, 2, 3):
        logs = {"loss": torch.tensor(2.0 + step), "emb_std": 0.3, "loss_koleo": torch.tensor(0.1)}
        tr.step_done(step, logs, SCHEDULE, t0=0.0, images=8, log_now=tr.log_due(step - 1))
    tr.close()
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 3]
    assert list(recs[0]) == ["step", "epoch", "loss", *SCHEDULE, "skipped_images", "emb_std", "loss_koleo",
                             "train_img_s", "time_s"]
    assert recs[1]["loss"] == 5.0 and recs[1]["epoch"] == 0.75 and recs[1]["skipped_images"] == 1
    assert recs[0]["train_img_s"] is None and tr.compute_imgs == 16  # the first step's one-off costs not counted
    assert tr.loss_value == 5.0 and tr.last_signals() == {"step": 3, "loss": 5.0, "emb_std": 0.3}


def test_tracker_judges_collapse_over_the_whole_run_and_only_stops_for_this_session(tmp_path, caplog):
    cfg = tiny_config(tmp_path, "train.collapse_patience=2", "train.stop_on_collapse=true", "optim.warmup_epochs=0")
    flat = {"loss": torch.tensor(math.log(cfg.dino.out_dim))}  # uniform teacher and student
    tr = RunTracker(cfg, tmp_path, 0, 10, 4, True)
    tr.step_done(1, flat, SCHEDULE, 0.0, 8, True)
    assert not tr.collapse_stop
    tr.close()
    with caplog.at_level(logging.WARNING):  # resumed: the interval before the resume counts
        resumed = RunTracker(cfg, tmp_path, 1, 10, 4, True)
        assert resumed.last_metrics["step"] == 1 and not resumed.collapse_stop
        resumed.step_done(2, flat, SCHEDULE, 0.0, 8, True)
    resumed.close()
    assert resumed.collapse_stop and resumed.detector.collapsed and "COLLAPSED since step 1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # a finished run re-run replays quietly
        again = RunTracker(cfg, tmp_path, 2, 10, 4, True, replay_quietly=True)
    again.close()
    assert again.detector.collapsed and not again.collapse_stop and "COLLAPSED" not in caplog.text
    other_rank = RunTracker(cfg, tmp_path, 2, 10, 4, is_main=False)
    assert other_rank.last_metrics == {} and not other_rank.log_due(0)
