"""DINO pretraining on heterogeneous-channel images: one loop from one CPU to many GPUs (torchrun + DDP).

Resume is exact: data order comes from ``(seed, epoch)``, every image's augmentations from
``(seed, epoch, index)``, and the global torch RNG (drop-path) is re-seeded from ``(seed, step)`` at
every step; the checkpoint holds student, teacher, optimiser, DINO centre and step. A run killed and
resumed ends with the same weights as an uninterrupted one. Nothing goes wrong silently: collapse signals
are logged every interval (``monitor.py``, ``collapse.py``), SIGINT/SIGTERM checkpoint and stop
(``signals.py``), a NaN loss stops with the last good checkpoint named, and a finished run re-run reports
itself instead of overwriting its summary.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chadavit.data.augment import MultiCrop
from chadavit.pretrain import distributed as D
from chadavit.pretrain.check import run_learning_check
from chadavit.pretrain.checkpoint import ResumeError, load_resumable, save_checkpoint
from chadavit.pretrain.collapse import CollapseDetector
from chadavit.pretrain.config import PretrainConfig
from chadavit.pretrain.data import ensure_synthetic, open_all, resolve_paths, synthetic_dir
from chadavit.pretrain.failures import DatasetTooSmallError, NonFiniteLossError, TrainingInterrupted
from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.loader import EpochBatchSampler, MultiCropBatch, MultiCropDataset, make_pretrain_loader
from chadavit.pretrain.loader_bench import benchmark_loader
from chadavit.pretrain.loss import DINOLoss
from chadavit.pretrain.metrics_log import MetricsLog, read_metrics
from chadavit.pretrain.monitor import collapse_metrics
from chadavit.pretrain.objectives import student_forward
from chadavit.pretrain.net import DinoNet, MaybeCompiled, build_backbone, param_groups
from chadavit.pretrain.plots import plot_loss
from chadavit.pretrain.progress import Progress
from chadavit.pretrain.report import read_summary, write_summary
from chadavit.pretrain.runtime import amp_context, cpu_threads, keep_freed_memory, step_seed
from chadavit.pretrain.schedules import make_schedules
from chadavit.pretrain.signals import StopRequest, children_shielded, shutdown_workers

__all__ = ["CHECKPOINT_NAME", "DinoNet", "build_backbone", "param_groups", "run_learning_check", "train"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


# the collapse signals kept in the summary's ``last_metrics``
SIGNAL_KEYS = ("step", "loss", "teacher_entropy", "entropy_ratio", "kl_teacher_student", "emb_mean_cos", "emb_std",
               "emb_std_ratio")


def check_enough_images(n: int, batch_size: int, world: int, paths: list[Any]) -> None:
    """A one-line error instead of a traceback when no full batch can be drawn (batches are never padded)."""
    if n < batch_size * world:
        where = ", ".join(str(p) for p in paths) or "the training data"
        raise DatasetTooSmallError(
            f"{where}: {n} images (after filters), fewer than one global batch of {batch_size * world} "
            f"(data.batch_size {batch_size} x {world} processes); lower data.batch_size or add images")


def agree_to_stop(signal_seen: bool, collapse_stop: bool, distributed: bool,
                  device: torch.device) -> tuple[bool, bool]:
    """Whether any process saw a signal / decided collapse (all-reduced under DDP so all stop at one step)."""
    if not distributed:
        return signal_seen, collapse_stop
    import torch.distributed as dist

    t = torch.tensor([float(signal_seen), float(collapse_stop)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t[0] > 0), bool(t[1] > 0)


def train(cfg: PretrainConfig) -> dict[str, Any]:
    """Run (or resume) DINO pretraining described by ``cfg``; returns a summary dict (rank 0 has everything).

    Raises :class:`TrainingInterrupted` after SIGINT/SIGTERM (checkpoint saved), :class:`NonFiniteLossError`
    on a NaN/inf loss and :class:`DatasetTooSmallError` when the data holds less than one batch.
    """
    t_start = time.perf_counter()
    dist_info = D.setup(cfg.train.device)
    device = dist_info.device
    is_main = dist_info.is_main
    out = Path(cfg.train.out_dir)
    torch.set_num_threads(cpu_threads(cfg, dist_info))
    keep_freed_memory(device)

    # ---- everything that can fail on bad input happens before any work
    paths = resolve_paths(cfg)
    syn = synthetic_dir(cfg)
    ckpt_path = out / CHECKPOINT_NAME
    state = None
    if cfg.train.resume and ckpt_path.exists():
        state = load_resumable(cfg, ckpt_path)
    torch.manual_seed(cfg.train.seed)
    backbone = build_backbone(cfg)
    normalization = backbone.config.normalization if cfg.data.normalization == "auto" else cfg.data.normalization

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(__import__("yaml").safe_dump(cfg.to_dict(), sort_keys=False))
        if syn is not None:
            ensure_synthetic(cfg.data.synthetic, syn)
    D.barrier()
    if syn is not None:
        paths.append(syn)
    datasets = open_all(paths)
    if cfg.data.cells.size > 0:  # single-cell views cut from the real fields, cached under OUT/data by rank 0
        from chadavit.pretrain.data import cell_views

        real_paths = paths[: len(paths) - (syn is not None)]
        if is_main:
            cell_views(cfg, real_paths, datasets)
        D.barrier()
        datasets = cell_views(cfg, real_paths, datasets)
    f = cfg.data.filter
    if f.n_channels or f.channel_names or cfg.data.split_channels:
        from chadavit.data.filters import apply_filters

        datasets = apply_filters(datasets, f.n_channels or None, f.channel_names or None, cfg.data.split_channels)
    if cfg.model.overrides.get("channel_vocab") == "auto":  # identity embeddings for the data's own stain names
        vocab = sorted({str(n) for d in datasets for names in d.manifest["channel_names"] for n in names})
        torch.manual_seed(cfg.train.seed)
        backbone = build_backbone(cfg, vocab)
    stats = None
    if normalization == "dataset":  # one (low, high) per channel over the training set, saved with the model
        from chadavit.data.stats import channel_stats

        stats = state["normalization_stats"] if state is not None and "normalization_stats" in state \
            else channel_stats(datasets, seed=cfg.train.seed)
        backbone.config = backbone.config.replace(normalization="dataset", normalization_stats=stats)

    # ---- model, teacher, loss, optimiser
    torch.manual_seed(cfg.train.seed)
    d = cfg.dino
    head = DINOHead(backbone.embed_dim, d.out_dim, d.hidden_dim, d.bottleneck_dim, d.norm_last_layer)
    patch = int(getattr(backbone.config, "patch_size", 0))
    student = DinoNet(backbone, head, recon_patch=patch if d.mask_ratio > 0 else 0).to(device)
    teacher = copy.deepcopy(student).to(device)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    loss_fn = DINOLoss(d.out_dim, d.student_temp, d.center_momentum).to(device)
    groups = param_groups(student, cfg.train.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=0.0, betas=tuple(cfg.optim.betas))

    student_ddp: nn.Module = student
    if dist_info.distributed:
        student_ddp = nn.parallel.DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None)
        teacher.load_state_dict(student.state_dict())  # DDP broadcast rank 0's student: start the teacher from it
    forward = MaybeCompiled(student_ddp) if cfg.train.compile else student_ddp
    teacher_forward = MaybeCompiled(teacher) if cfg.train.compile else teacher

    # ---- data
    bs, world = cfg.data.batch_size, dist_info.world_size
    ds = MultiCropDataset(datasets, MultiCrop(cfg.augment), seed=cfg.train.seed, normalization=normalization,
                          preload_mb=cfg.data.preload_mb, stats=stats)
    check_enough_images(len(ds), bs, world, paths)
    sampler = EpochBatchSampler(len(ds), bs, world, dist_info.rank, seed=cfg.train.seed)
    loader = make_pretrain_loader(ds, sampler, cfg.data.num_workers, pin_memory=device.type == "cuda")
    spe = sampler.steps_per_epoch
    total_steps = cfg.train.epochs * spe
    sched = make_schedules(cfg, spe, bs * world)
    stop_step = min(total_steps, cfg.train.max_steps) if cfg.train.max_steps > 0 else total_steps

    step = 0
    if state is not None:
        student.load_state_dict(state["student"])
        teacher.load_state_dict(state["teacher"])
        optimizer.load_state_dict(state["optimizer"])
        loss_fn.center.copy_(state["center"].to(device))
        step = int(state["step"])
        if state.get("steps_per_epoch") != spe:
            raise ResumeError(f"{ckpt_path}: steps per epoch changed ({state.get('steps_per_epoch')} -> {spe}); "
                              "the data or the number of processes differs from the checkpointed run")
        if is_main:
            log.info("resuming from %s at step %d", ckpt_path, step)
    start_step = step
    finished_before = state is not None and step >= stop_step
    previous = read_summary(out / "summary.json") if finished_before else None
    if previous is not None and previous.get("steps") != step:
        previous = None

    metrics_path = out / "metrics.jsonl"
    mlog = MetricsLog(out, step) if is_main else None
    # collapse is judged over the whole run, the part before a resume included
    detector = CollapseDetector(d.out_dim, patience=cfg.train.collapse_patience,
                                judge_from_step=int(round(cfg.optim.warmup_epochs * spe)),
                                stops=cfg.train.stop_on_collapse)
    last_metrics: dict[str, Any] = {}
    for rec in (read_metrics(metrics_path) if is_main else []):
        msg = detector.update(rec)
        if msg and not finished_before:
            log.warning(msg)
        last_metrics = rec

    last_saved = step if state is not None else None

    def checkpoint() -> None:
        nonlocal last_saved
        last_saved = step
        if not is_main:
            return
        save_checkpoint({
            "student": student.state_dict(), "teacher": teacher.state_dict(), "optimizer": optimizer.state_dict(),
            "center": loss_fn.center.detach().cpu(), "step": step, "epoch": step // spe, "steps_per_epoch": spe,
            "config": cfg.to_dict(), "world_size": world, "backbone_config": student.backbone.config.to_dict(),
            **({"normalization_stats": stats} if stats is not None else {}),
        }, ckpt_path)

    last_layer = set(id(p) for p in student.head.last_layer_parameters())
    freeze_steps = int(round(d.freeze_last_layer_epochs * spe))
    skipped_total = 0
    compute_time, compute_imgs, wait_time = 0.0, 0, 0.0
    loss_value = float("nan")
    stopped: str | None = None  # "signal" | "collapse"
    # only a collapse declared in this session stops it: a resume (e.g. with a lower optim.lr) gets its chance
    collapse_stop = False
    student.train()
    first_epoch = step // spe
    # handlers go in before the loader's workers start, so the workers inherit them and ignore the signal too
    with StopRequest() as stop:
        loader_img_s = float("nan")
        if cfg.data.loader_benchmark_steps > 0 and is_main and step < stop_step:
            with children_shielded():
                loader_img_s = benchmark_loader(loader, sampler, cfg.data.loader_benchmark_steps,
                                                warmup=max(1, cfg.data.num_workers))
            log.info("data loading: %.1f images/s with %d workers", loader_img_s, cfg.data.num_workers)
        progress = Progress(stop_step, step, enabled=is_main and cfg.train.progress,
                            every_s=cfg.train.progress_every_s)
        try:
            for epoch in range(first_epoch, cfg.train.epochs):
                if step >= stop_step or stopped:
                    break
                sampler.set_epoch(epoch, step - epoch * spe)
                t_wait = time.perf_counter()
                with children_shielded():
                    batches = iter(loader)
                while True:
                    try:
                        batch: MultiCropBatch = next(batches)
                    except StopIteration:
                        break
                    except Exception:  # a loader worker killed by the same Ctrl-C / SIGTERM
                        if stop.signum is None:
                            raise
                        stopped = "signal"
                        break
                    t0 = time.perf_counter()
                    wait_time += t0 - t_wait
                    if batch.skipped:
                        skipped_total += len(batch.skipped)
                        for msg in batch.skipped:
                            log.warning("skipped unreadable image %s", msg)
                    torch.manual_seed(step_seed(cfg.train.seed, step))
                    for g in optimizer.param_groups:
                        g["lr"] = float(sched.lr[step]) * g.get("lr_scale", 1.0)
                        g["weight_decay"] = float(sched.wd[step]) if g["apply_wd"] else 0.0
                    log_now = mlog is not None and (
                        (step + 1) % cfg.train.log_every == 0 or step + 1 == stop_step or step == 0)
                    glob = batch.global_crops.to(device, non_blocking=True)
                    crops = [glob] + ([batch.local_crops.to(device, non_blocking=True)] if batch.local_crops else [])
                    t_temp = float(sched.teacher_temp[step])
                    with amp_context(cfg, device):
                        with torch.no_grad():
                            t_out, t_cls = teacher_forward([glob], True)
                        s_out, extra = student_forward(forward, crops, d, patch)
                    signals = collapse_metrics(s_out.detach(), t_out, t_cls, loss_fn.center, t_temp,
                                               d.student_temp) if log_now else {}
                    dino_loss = loss_fn(s_out, t_out, t_temp)
                    loss = dino_loss + sum(extra.values()) if extra else dino_loss
                    if not torch.isfinite(loss):
                        good = (f"last good checkpoint: {ckpt_path} (step {last_saved}); resume from it with a "
                                "lower optim.lr or a smaller optim.clip_grad" if last_saved is not None and
                                ckpt_path.exists() else "no checkpoint was saved yet; lower optim.lr and start again")
                        raise NonFiniteLossError(f"{out}: the DINO loss is {loss.item()} at step {step + 1}; "
                                                 f"training stopped ({good})")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    grad_norm = float("nan")
                    if cfg.optim.clip_grad > 0:
                        grad_norm = float(nn.utils.clip_grad_norm_(student.parameters(), cfg.optim.clip_grad))
                    if step < freeze_steps:
                        for p in student.parameters():
                            if id(p) in last_layer:
                                p.grad = None
                    optimizer.step()
                    with torch.no_grad():
                        m = float(sched.momentum[step])
                        for pt, ps in zip(teacher.parameters(), student.parameters()):
                            if ps.requires_grad:  # frozen (train.freeze_blocks) stay bit-identical
                                pt.mul_(m).add_(ps.detach(), alpha=1 - m)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    loss_value = float(dino_loss.detach())
                    step += 1
                    dt = time.perf_counter() - t0
                    if step > 1 + start_step:  # first step includes one-off costs
                        compute_time += dt
                        compute_imgs += batch.batch_size * world
                    if log_now:
                        rec = {"step": step, "epoch": round(step / spe, 4), "loss": loss_value,
                               "lr": float(sched.lr[step - 1]), "wd": float(sched.wd[step - 1]),
                               "momentum": m, "teacher_temp": t_temp, "grad_norm": grad_norm,
                               "skipped_images": skipped_total, **signals,
                               **{f"loss_{k}": float(v.detach()) for k, v in extra.items()},
                               "train_img_s": compute_imgs / compute_time if compute_time else None,
                               "time_s": round(time.perf_counter() - t_start, 2)}
                        mlog.write(rec)
                        last_metrics = rec
                        msg = detector.update(rec)
                        if msg:
                            log.warning(msg)
                            collapse_stop = cfg.train.stop_on_collapse
                    progress.update(step, {"loss": loss_value, **signals})
                    if cfg.train.checkpoint_every > 0 and step % cfg.train.checkpoint_every == 0 \
                            and step < stop_step:
                        checkpoint()
                    got_signal, collapsed_now = agree_to_stop(stop.signum is not None, collapse_stop,
                                                              dist_info.distributed, device)
                    if got_signal or collapsed_now:
                        stopped = "signal" if got_signal else "collapse"
                        break
                    if step >= stop_step:
                        break
                    t_wait = time.perf_counter()
            if not finished_before:
                checkpoint()
        finally:
            shutdown_workers(loader)
            progress.close()
            if mlog is not None:
                mlog.close()
    if stopped == "signal":
        D.barrier()
        who = stop.name or "a signal to another process"
        raise TrainingInterrupted(
            f"{out}: stopped by {who} at step {step}/{stop_step}; checkpoint saved to {ckpt_path}. "
            f"To resume, run the same command again (train.resume=true is the default): it continues from step {step}")
    if stopped == "collapse" and is_main:
        log.warning("stopped at step %d because the run collapsed (train.stop_on_collapse=true); checkpoint saved "
                    "to %s", step, ckpt_path)

    steps_run = step - start_step
    summary: dict[str, Any] = {
        "out_dir": str(out), "steps": step, "total_steps": total_steps, "steps_per_epoch": spe,
        "final_loss": loss_value if steps_run else last_metrics.get("loss"),
        "skipped_images": skipped_total, "world_size": world,
        "train_img_s": compute_imgs / compute_time if compute_time else None,
        "loader_img_s": loader_img_s, "data_wait_s": round(wait_time, 2),
        "checkpoint": str(ckpt_path), "normalization": normalization,
        "collapsed": detector.collapsed, "collapse_reason": detector.reason, "stopped": stopped,
        "last_metrics": {k: last_metrics.get(k) for k in SIGNAL_KEYS if k in last_metrics},
    }
    if finished_before:
        summary["already_finished"] = True
        for k in ("train_img_s", "loader_img_s", "data_wait_s", "skipped_images", "knn_trained", "knn_random",
                  "chance", "knn_random_all"):
            if previous is not None and previous.get(k) is not None:
                summary[k] = previous[k]
    if is_main:
        from chadavit.models import save_pretrained

        backbone_dir = out / "backbone"
        if not (finished_before and backbone_dir.is_dir()):
            save_pretrained(teacher.backbone, backbone_dir)
        summary["backbone"] = str(backbone_dir)
        if metrics_path.exists():
            plot_loss(metrics_path, out / "loss_curve.png")
            summary["loss_curve"] = str(out / "loss_curve.png")
        if cfg.check.enabled and "knn_trained" not in summary:
            summary.update(run_learning_check(cfg, teacher.backbone, normalization, device))
        summary["wall_s"] = round(time.perf_counter() - t_start, 1)
        if previous is None:  # a finished run's good summary is never overwritten
            write_summary(summary, out / "summary.json")
    D.barrier()
    summary["_teacher"] = teacher
    summary["_student"] = student
    return summary
