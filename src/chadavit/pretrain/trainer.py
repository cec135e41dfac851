"""DINO pretraining on heterogeneous-channel images: one loop from one CPU to many GPUs (torchrun + DDP).

The loop only: the method (student, teacher, head, loss, centre, teacher update) is ``method.py``, what
it trains on ``inputs.py``, checkpoints and resume ``resume.py``, metrics and collapse ``tracker.py``.

Resume is exact: data order comes from ``(seed, epoch)``, every image's augmentations from
``(seed, epoch, index)``, and the global torch RNG (drop-path) is re-seeded from ``(seed, step)`` at
every step; the checkpoint holds student, teacher, optimiser, DINO centre and step. A run killed and
resumed ends with the same weights as an uninterrupted one. Nothing goes wrong silently: collapse signals
are logged every interval (``monitor.py``, ``collapse.py``), SIGINT/SIGTERM checkpoint and stop
(``signals.py``), a NaN loss stops with the last good checkpoint named, and a finished run re-run reports
itself instead of overwriting its summary.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chadavit.pretrain import distributed as D
from chadavit.pretrain.checkpoint import load_resumable
from chadavit.pretrain.config import PretrainConfig
from chadavit.pretrain.data import resolve_paths, synthetic_dir
from chadavit.pretrain.failures import TrainingInterrupted
from chadavit.pretrain.inputs import check_enough_images, make_loader, prepare_inputs
from chadavit.pretrain.loader import EpochBatchSampler, MultiCropBatch
from chadavit.pretrain.loader_bench import benchmark_loader
from chadavit.pretrain.loss import DINOLoss
from chadavit.pretrain.method import DinoMethod
from chadavit.pretrain.metrics_log import MetricsLog
from chadavit.pretrain.net import DinoNet, build_backbone, param_groups
from chadavit.pretrain.plots import plot_loss
from chadavit.pretrain.report import read_summary, write_summary
from chadavit.pretrain.resume import Checkpointer, restore
from chadavit.pretrain.runtime import cpu_threads, keep_freed_memory, step_seed
from chadavit.pretrain.schedules import Schedules, make_schedules
from chadavit.pretrain.signals import shutdown_workers
from chadavit.pretrain.tracker import SIGNAL_KEYS, RunTracker
from chadavit.signals import StopRequest, children_shielded

# DINOLoss and MetricsLog stay importable here: tests patch their methods through this module
__all__ = ["CHECKPOINT_NAME", "SIGNAL_KEYS", "DINOLoss", "DinoMethod", "DinoNet", "MetricsLog", "build_backbone",
           "check_enough_images", "param_groups", "train"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def agree_to_stop(signal_seen: bool, collapse_stop: bool, distributed: bool,
                  device: torch.device) -> tuple[bool, bool]:
    """Whether any process saw a signal / decided collapse (all-reduced under DDP so all stop at one step)."""
    if not distributed:
        return signal_seen, collapse_stop
    import torch.distributed as dist

    t = torch.tensor([float(signal_seen), float(collapse_stop)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t[0] > 0), bool(t[1] > 0)


@dataclasses.dataclass
class _Run:
    """The loop's state: what one step needs, and where the run stands."""

    cfg: PretrainConfig
    out: Path
    dist_info: D.DistInfo
    method: DinoMethod
    optimizer: torch.optim.Optimizer
    sched: Schedules
    sampler: EpochBatchSampler
    loader: Any
    tracker: RunTracker
    ckpt: Checkpointer
    step: int
    stop_step: int
    stopped: str | None = None  # "signal" | "collapse"

    @property
    def device(self) -> torch.device:
        return self.dist_info.device


def train(cfg: PretrainConfig) -> dict[str, Any]:
    """Run (or resume) DINO pretraining described by ``cfg``; returns a summary dict (rank 0 has everything).

    Raises :class:`TrainingInterrupted` after SIGINT/SIGTERM (checkpoint saved), :class:`NonFiniteLossError`
    on a NaN/inf loss and :class:`DatasetTooSmallError` when the data holds less than one batch.
    """
    t_start = time.perf_counter()
    dist_info = D.setup(cfg.train.device)
    is_main, world = dist_info.is_main, dist_info.world_size
    out = Path(cfg.train.out_dir)
    torch.set_num_threads(cpu_threads(cfg, dist_info))
    keep_freed_memory(dist_info.device)

    # everything that can fail on bad input happens before any work
    paths, syn = resolve_paths(cfg), synthetic_dir(cfg)
    ckpt_path = out / CHECKPOINT_NAME
    state = load_resumable(cfg, ckpt_path) if cfg.train.resume and ckpt_path.exists() else None
    inputs = prepare_inputs(cfg, paths, syn, is_main, state)
    torch.manual_seed(cfg.train.seed)
    method = DinoMethod(cfg, inputs.backbone, dist_info.device, dist_info.distributed)
    optimizer = torch.optim.AdamW(method.param_groups, lr=0.0, betas=tuple(cfg.optim.betas))
    sampler, loader = make_loader(cfg, inputs, dist_info)
    spe = sampler.steps_per_epoch
    total_steps = cfg.train.epochs * spe
    stop_step = min(total_steps, cfg.train.max_steps) if cfg.train.max_steps > 0 else total_steps

    step = restore(state, method, optimizer, spe, ckpt_path)
    if state is not None and is_main:
        log.info("resuming from %s at step %d", ckpt_path, step)
    finished_before = state is not None and step >= stop_step
    tracker = RunTracker(cfg, out, step, stop_step, spe, is_main, replay_quietly=finished_before, t_start=t_start)
    ckpt = Checkpointer(ckpt_path, cfg, method, optimizer, spe, world, is_main,
                        last_saved=step if state is not None else None, stats=inputs.stats)
    run = _Run(cfg, out, dist_info, method, optimizer, make_schedules(cfg, spe, cfg.data.batch_size * world),
               sampler, loader, tracker, ckpt, step, stop_step)
    loader_img_s = _loop(run, save_at_end=not finished_before)
    summary = {
        "out_dir": str(out), "steps": run.step, "total_steps": total_steps, "steps_per_epoch": spe,
        "final_loss": tracker.loss_value if run.step > step else tracker.last_metrics.get("loss"),
        "skipped_images": tracker.skipped, "world_size": world, "train_img_s": tracker.train_img_s,
        "loader_img_s": loader_img_s, "data_wait_s": round(tracker.wait_time, 2),
        "checkpoint": str(ckpt_path), "normalization": inputs.normalization,
        "collapsed": tracker.detector.collapsed, "collapse_reason": tracker.detector.reason, "stopped": run.stopped,
        "last_metrics": tracker.last_signals(),
    }
    return _finish(run, summary, finished_before, t_start)


def _loop(run: _Run, save_at_end: bool) -> float:
    """Train from ``run.step`` to ``run.stop_step`` (or a signal / collapse); the loader benchmark's images/s."""
    cfg, is_main = run.cfg, run.dist_info.is_main
    # handlers go in before the loader's workers start, so the workers inherit them and ignore the signal too
    with StopRequest() as stop:
        loader_img_s = float("nan")
        if cfg.data.loader_benchmark_steps > 0 and is_main and run.step < run.stop_step:
            with children_shielded():
                loader_img_s = benchmark_loader(run.loader, run.sampler, cfg.data.loader_benchmark_steps,
                                                warmup=max(1, cfg.data.num_workers))
            log.info("data loading: %.1f images/s with %d workers", loader_img_s, cfg.data.num_workers)
        run.tracker.start_progress(run.step)
        try:
            _epochs(run, stop)
            if save_at_end:
                run.ckpt.save(run.step)
        finally:
            shutdown_workers(run.loader)
            run.tracker.close()
    if run.stopped == "signal":
        D.barrier()
        who = stop.name or "a signal to another process"
        raise TrainingInterrupted(
            f"{run.out}: stopped by {who} at step {run.step}/{run.stop_step}; checkpoint saved to {run.ckpt.path}. "
            "To resume, run the same command again (train.resume=true is the default): it continues from step "
            f"{run.step}")
    if run.stopped == "collapse" and is_main:
        log.warning("stopped at step %d because the run collapsed (train.stop_on_collapse=true); checkpoint saved "
                    "to %s", run.step, run.ckpt.path)
    return loader_img_s


def _epochs(run: _Run, stop: StopRequest) -> None:
    """The epochs: data order from ``(seed, epoch)``, checkpoints every ``train.checkpoint_every`` steps."""
    spe, every = run.sampler.steps_per_epoch, run.cfg.train.checkpoint_every
    for epoch in range(run.step // spe, run.cfg.train.epochs):
        if run.step >= run.stop_step or run.stopped:
            break
        run.sampler.set_epoch(epoch, run.step - epoch * spe)
        t_wait = time.perf_counter()
        with children_shielded():
            batches = iter(run.loader)
        while True:
            try:
                batch: MultiCropBatch = next(batches)
            except StopIteration:
                break
            except Exception:  # a loader worker killed by the same Ctrl-C / SIGTERM
                if stop.signum is None:
                    raise
                run.stopped = "signal"
                break
            t0 = time.perf_counter()
            run.tracker.got_batch(batch, t0 - t_wait)
            _step(run, batch, t0)
            if every > 0 and run.step % every == 0 and run.step < run.stop_step:
                run.ckpt.save(run.step)
            got_signal, collapsed_now = agree_to_stop(stop.signum is not None, run.tracker.collapse_stop,
                                                      run.dist_info.distributed, run.device)
            if got_signal or collapsed_now:
                run.stopped = "signal" if got_signal else "collapse"
                break
            if run.step >= run.stop_step:
                break
            t_wait = time.perf_counter()


def _step(run: _Run, batch: MultiCropBatch, t0: float) -> None:
    """One optimiser step of the method at ``run.step``, then the teacher's EMA update and the metrics."""
    cfg, step, sched, method = run.cfg, run.step, run.sched, run.method
    torch.manual_seed(step_seed(cfg.train.seed, step))  # drop-path: exact resume
    for g in run.optimizer.param_groups:
        g["lr"] = float(sched.lr[step]) * g.get("lr_scale", 1.0)
        g["weight_decay"] = float(sched.wd[step]) if g["apply_wd"] else 0.0
    log_now = run.tracker.log_due(step)
    t_temp = float(sched.teacher_temp[step])
    loss, logs = method.loss(batch, t_temp, signals=log_now)
    if not torch.isfinite(loss):
        terms = {"dino": float(logs["loss"]), **{k.removeprefix("loss_"): float(v) for k, v in logs.items()
                                                  if k.startswith("loss_")}}
        raise run.ckpt.nan_error(run.out, loss.item(), step + 1, terms)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = float("nan")
    if cfg.optim.clip_grad > 0:
        grad_norm = float(nn.utils.clip_grad_norm_(method.student.parameters(), cfg.optim.clip_grad))
    if step < int(round(cfg.dino.freeze_last_layer_epochs * run.sampler.steps_per_epoch)):
        method.drop_last_layer_grads()
    run.optimizer.step()
    m = float(sched.momentum[step])
    method.update_teacher(m)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    run.step = step + 1
    schedule = {"lr": float(sched.lr[step]), "wd": float(sched.wd[step]), "momentum": m, "teacher_temp": t_temp,
                "grad_norm": grad_norm}
    run.tracker.step_done(run.step, logs, schedule, t0, batch.batch_size * run.dist_info.world_size, log_now)


def _finish(run: _Run, summary: dict[str, Any], finished_before: bool, t_start: float) -> dict[str, Any]:
    """Save the teacher's backbone, the loss curve and summary.json (rank 0); a finished run re-run keeps its
    summary (and its measured numbers) instead of overwriting them."""
    out = run.out
    previous = read_summary(out / "summary.json") if finished_before else None
    if previous is not None and previous.get("steps") != run.step:
        previous = None
    if finished_before:
        summary["already_finished"] = True
        for k in ("train_img_s", "loader_img_s", "data_wait_s", "skipped_images", "knn_trained", "knn_random",
                  "chance", "knn_random_all"):
            if previous is not None and previous.get(k) is not None:
                summary[k] = previous[k]
    teacher = run.method.teacher
    if run.dist_info.is_main:
        from chadavit.models import save_pretrained

        backbone_dir = out / "backbone"
        if not (finished_before and backbone_dir.is_dir()):
            save_pretrained(teacher.backbone, backbone_dir)
        summary["backbone"] = str(backbone_dir)
        metrics_path = out / "metrics.jsonl"
        if metrics_path.exists():
            plot_loss(metrics_path, out / "loss_curve.png")
            summary["loss_curve"] = str(out / "loss_curve.png")
        summary["wall_s"] = round(time.perf_counter() - t_start, 1)
        if previous is None:  # a finished run's good summary is never overwritten
            write_summary(summary, out / "summary.json")
    D.barrier()
    summary["_teacher"] = teacher
    summary["_student"] = run.method.student
    return summary
