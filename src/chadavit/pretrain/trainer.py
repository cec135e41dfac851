"""DINO pretraining on heterogeneous-channel images: one loop from one CPU to many GPUs (torchrun + DDP).

Resume is exact: data order comes from ``(seed, epoch)``, every image's augmentations from
``(seed, epoch, index)``, and the global torch RNG (drop-path) is re-seeded from ``(seed, step)`` at
every step; the checkpoint holds student, teacher, optimiser, DINO centre and step. A run killed and
resumed ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chadavit.data.augment import MultiCrop
from chadavit.pretrain.loader import EpochBatchSampler, MultiCropBatch, MultiCropDataset, make_pretrain_loader
from chadavit.pretrain import distributed as D
from chadavit.pretrain.check import run_learning_check
from chadavit.pretrain.checkpoint import ResumeError, load_resumable, save_checkpoint
from chadavit.pretrain.config import PretrainConfig
from chadavit.pretrain.data import ensure_synthetic, open_all, resolve_paths, synthetic_dir
from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.loader_bench import benchmark_loader
from chadavit.pretrain.loss import DINOLoss
from chadavit.pretrain.metrics_log import MetricsLog
from chadavit.pretrain.net import DinoNet, MaybeCompiled, build_backbone, param_groups
from chadavit.pretrain.plots import plot_loss
from chadavit.pretrain.runtime import amp_context, cpu_threads, step_seed
from chadavit.pretrain.schedules import make_schedules

__all__ = ["CHECKPOINT_NAME", "DinoNet", "build_backbone", "param_groups", "run_learning_check", "train"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def train(cfg: PretrainConfig) -> dict[str, Any]:
    """Run (or resume) DINO pretraining described by ``cfg``; returns a summary dict (rank 0 has everything)."""
    t_start = time.perf_counter()
    dist_info = D.setup(cfg.train.device)
    device = dist_info.device
    is_main = dist_info.is_main
    out = Path(cfg.train.out_dir)
    torch.set_num_threads(cpu_threads(cfg, dist_info))

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
    student = DinoNet(backbone, head).to(device)
    teacher = copy.deepcopy(student).to(device)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    loss_fn = DINOLoss(d.out_dim, d.student_temp, d.center_momentum).to(device)
    groups = param_groups(student)
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

    loader_img_s = float("nan")
    if cfg.data.loader_benchmark_steps > 0 and is_main and step < stop_step:
        loader_img_s = benchmark_loader(loader, sampler, cfg.data.loader_benchmark_steps,
                                        warmup=max(1, cfg.data.num_workers))
        log.info("data loading: %.1f images/s with %d workers", loader_img_s, cfg.data.num_workers)

    metrics_path = out / "metrics.jsonl"
    mlog = MetricsLog(out, step) if is_main else None

    def checkpoint() -> None:
        if not is_main:
            return
        save_checkpoint({
            "student": student.state_dict(), "teacher": teacher.state_dict(), "optimizer": optimizer.state_dict(),
            "center": loss_fn.center.detach().cpu(), "step": step, "epoch": step // spe, "steps_per_epoch": spe,
            "config": cfg.to_dict(), "world_size": world,
            **({"normalization_stats": stats} if stats is not None else {}),
        }, ckpt_path)

    progress = None
    if is_main and cfg.train.progress:
        from tqdm import tqdm

        progress = tqdm(total=stop_step, initial=step, desc="pretrain", unit="step", dynamic_ncols=True,
                        disable=None)
    last_layer = set(id(p) for p in student.head.last_layer_parameters())
    freeze_steps = int(round(d.freeze_last_layer_epochs * spe))
    skipped_total = 0
    compute_time, compute_imgs, wait_time = 0.0, 0, 0.0
    loss_value = float("nan")
    student.train()
    first_epoch = step // spe
    try:
        for epoch in range(first_epoch, cfg.train.epochs):
            if step >= stop_step:
                break
            sampler.set_epoch(epoch, step - epoch * spe)
            t_wait = time.perf_counter()
            for batch in loader:
                batch: MultiCropBatch
                t0 = time.perf_counter()
                wait_time += t0 - t_wait
                if batch.skipped:
                    skipped_total += len(batch.skipped)
                    for msg in batch.skipped:
                        log.warning("skipped unreadable image %s", msg)
                torch.manual_seed(step_seed(cfg.train.seed, step))
                for g in optimizer.param_groups:
                    g["lr"] = float(sched.lr[step])
                    g["weight_decay"] = float(sched.wd[step]) if g["apply_wd"] else 0.0
                glob = batch.global_crops.to(device, non_blocking=True)
                crops = [glob] + ([batch.local_crops.to(device, non_blocking=True)] if batch.local_crops else [])
                with amp_context(cfg, device):
                    with torch.no_grad():
                        t_out = teacher_forward([glob])
                    s_out = forward(crops)
                loss = loss_fn(s_out, t_out, float(sched.teacher_temp[step]))
                if not torch.isfinite(loss):
                    checkpoint_msg = f"last good checkpoint: {ckpt_path}" if ckpt_path.exists() else "no checkpoint"
                    raise FloatingPointError(f"DINO loss is {loss.item()} at step {step}; lower optim.lr or raise "
                                             f"dino.warmup_teacher_temp_epochs ({checkpoint_msg})")
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
                        pt.mul_(m).add_(ps.detach(), alpha=1 - m)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                loss_value = float(loss.detach())
                step += 1
                dt = time.perf_counter() - t0
                if step > 1 + (state["step"] if state else 0):  # first step includes one-off costs
                    compute_time += dt
                    compute_imgs += batch.batch_size * world
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
                if mlog is not None and (step % cfg.train.log_every == 0 or step == stop_step or step == 1):
                    rec = {"step": step, "epoch": round(step / spe, 4), "loss": loss_value,
                           "lr": float(sched.lr[step - 1]), "wd": float(sched.wd[step - 1]),
                           "momentum": m, "teacher_temp": float(sched.teacher_temp[step - 1]),
                           "grad_norm": grad_norm, "skipped_images": skipped_total,
                           "train_img_s": compute_imgs / compute_time if compute_time else None,
                           "time_s": round(time.perf_counter() - t_start, 2)}
                    mlog.write(rec)
                if cfg.train.checkpoint_every > 0 and step % cfg.train.checkpoint_every == 0 and step < stop_step:
                    checkpoint()
                if step >= stop_step:
                    break
                t_wait = time.perf_counter()
        checkpoint()
    finally:
        if progress is not None:
            progress.close()
        if mlog is not None:
            mlog.close()

    summary: dict[str, Any] = {
        "out_dir": str(out), "steps": step, "total_steps": total_steps, "steps_per_epoch": spe,
        "final_loss": loss_value, "skipped_images": skipped_total, "world_size": world,
        "train_img_s": compute_imgs / compute_time if compute_time else float("nan"),
        "loader_img_s": loader_img_s, "data_wait_s": round(wait_time, 2),
        "checkpoint": str(ckpt_path), "normalization": normalization,
    }
    if is_main:
        from chadavit.models import save_pretrained

        summary["backbone"] = str(save_pretrained(teacher.backbone, out / "backbone"))
        if metrics_path.exists():
            plot_loss(metrics_path, out / "loss_curve.png")
            summary["loss_curve"] = str(out / "loss_curve.png")
        if cfg.check.enabled:
            summary.update(run_learning_check(cfg, teacher.backbone, normalization, device))
        summary["wall_s"] = round(time.perf_counter() - t_start, 1)
        tmp = out / ".summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=str))
        os.replace(tmp, out / "summary.json")
    D.barrier()
    summary["_teacher"] = teacher
    summary["_student"] = student
    return summary
