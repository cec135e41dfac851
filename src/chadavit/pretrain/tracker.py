"""Monitoring of a running pretraining: metrics.jsonl, collapse judgement, the progress line, throughput.

One :class:`RunTracker` per run. Collapse is judged over the whole run, the part before a resume included
(it replays metrics.jsonl), but only a collapse declared in this session stops it: a resume (e.g. with a
lower ``optim.lr``) gets its chance.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from chadavit.pretrain.collapse import CollapseDetector
from chadavit.pretrain.config import PretrainConfig
from chadavit.pretrain.loader import MultiCropBatch
from chadavit.pretrain.metrics_log import MetricsLog, read_metrics
from chadavit.pretrain.progress import Progress

log = logging.getLogger("chadavit.pretrain.trainer")

# the collapse signals kept in the summary's ``last_metrics``
SIGNAL_KEYS = ("step", "loss", "teacher_entropy", "entropy_ratio", "kl_teacher_student", "emb_mean_cos", "emb_std",
               "emb_std_ratio")


class RunTracker:
    """Writes a metrics record every ``train.log_every`` steps (rank 0), judges collapse, counts throughput."""

    def __init__(self, cfg: PretrainConfig, out: Path, step: int, stop_step: int, steps_per_epoch: int,
                 is_main: bool, replay_quietly: bool = False, t_start: float | None = None) -> None:
        self.cfg, self.spe, self.stop_step, self.start_step = cfg, steps_per_epoch, stop_step, step
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.mlog = MetricsLog(out, step) if is_main else None
        self.detector = CollapseDetector(cfg.dino.out_dim, patience=cfg.train.collapse_patience,
                                         judge_from_step=int(round(cfg.optim.warmup_epochs * steps_per_epoch)),
                                         stops=cfg.train.stop_on_collapse)
        self.last_metrics: dict[str, Any] = {}
        for rec in (read_metrics(out / "metrics.jsonl") if is_main else []):
            msg = self.detector.update(rec)
            if msg and not replay_quietly:
                log.warning(msg)
            self.last_metrics = rec
        self.skipped = 0
        self.compute_time, self.compute_imgs, self.wait_time = 0.0, 0, 0.0
        self.loss_value = float("nan")
        self.collapse_stop = False
        self.progress: Progress | None = None

    def start_progress(self, step: int) -> None:
        self.progress = Progress(self.stop_step, step, enabled=self.mlog is not None and self.cfg.train.progress,
                                 every_s=self.cfg.train.progress_every_s)

    def got_batch(self, batch: MultiCropBatch, waited_s: float) -> None:
        """Count the time spent waiting for ``batch`` and warn about the images its workers skipped."""
        self.wait_time += waited_s
        if batch.skipped:
            self.skipped += len(batch.skipped)
            for msg in batch.skipped:
                log.warning("skipped unreadable image %s", msg)

    def log_due(self, step: int) -> bool:
        """Whether the step about to run (0-based ``step``) writes a metrics record."""
        return self.mlog is not None and (
            (step + 1) % self.cfg.train.log_every == 0 or step + 1 == self.stop_step or step == 0)

    @property
    def train_img_s(self) -> float | None:
        return self.compute_imgs / self.compute_time if self.compute_time else None

    def step_done(self, step: int, logs: dict[str, Any], schedule: dict[str, float], t0: float, images: int,
                  log_now: bool) -> None:
        """After step ``step`` (1-based) with the method's ``logs``: throughput, metrics record, progress."""
        self.loss_value = float(logs["loss"])
        dt = time.perf_counter() - t0
        if step > 1 + self.start_step:  # first step includes one-off costs
            self.compute_time += dt
            self.compute_imgs += images
        signals = {k: v for k, v in logs.items() if not k.startswith("loss")}
        if log_now and self.mlog is not None:
            rec = {"step": step, "epoch": round(step / self.spe, 4), "loss": self.loss_value, **schedule,
                   "skipped_images": self.skipped, **signals,
                   **{k: float(v) for k, v in logs.items() if k.startswith("loss_")},
                   "train_img_s": self.train_img_s, "time_s": round(time.perf_counter() - self.t_start, 2)}
            self.mlog.write(rec)
            self.last_metrics = rec
            msg = self.detector.update(rec)
            if msg:
                log.warning(msg)
                self.collapse_stop = self.cfg.train.stop_on_collapse
        if self.progress is not None:
            self.progress.update(step, {"loss": self.loss_value, **signals})

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.mlog is not None:
            self.mlog.close()

    def last_signals(self) -> dict[str, Any]:
        """The collapse signals of the last metrics record (the summary's ``last_metrics``)."""
        return {k: self.last_metrics.get(k) for k in SIGNAL_KEYS if k in self.last_metrics}
