"""DINO pretraining on heterogeneous-channel images: one loop from one CPU to many GPUs (torchrun + DDP).

Resume is exact: data order comes from ``(seed, epoch)``, every image's augmentations from
``(seed, epoch, index)``, and the global torch RNG (drop-path) is re-seeded from ``(seed, step)`` at
every step; the checkpoint holds student, teacher, optimiser, DINO centre and step. A run killed and
resumed ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.data.augment import MultiCrop
from chadavit.pretrain.loader import EpochBatchSampler, MultiCropBatch, MultiCropDataset, make_pretrain_loader
from chadavit.pretrain import distributed as D
from chadavit.pretrain.checkpoint import ResumeError, load_checkpoint, save_checkpoint
from chadavit.pretrain.config import ConfigError, PretrainConfig, config_from_dict
from chadavit.pretrain.data import ensure_synthetic, open_all, resolve_paths, synthetic_dir
from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.loss import DINOLoss
from chadavit.pretrain.schedules import cosine_schedule, teacher_temp_schedule

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


class DinoNet(nn.Module):
    """Backbone + DINO head; ``forward`` takes every crop batch of a step in one call (one DDP forward)."""

    def __init__(self, backbone: nn.Module, head: DINOHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: list[ChannelBatch]) -> torch.Tensor:
        return torch.cat([self.head(self.backbone(b).cls) for b in crops])


class MaybeCompiled:
    """``torch.compile`` where it works; falls back to eager (with a warning) if compilation fails.

    Why: packed batches have data-dependent token counts, which some torch/inductor versions cannot
    compile (torch 2.13 CPU: "cannot determine truth value of Relational"); a training job must not die of it.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.compiled = torch.compile(module)
        self.ok = True

    def __call__(self, *args: Any) -> Any:
        if self.ok:
            try:
                return self.compiled(*args)
            except Exception as exc:  # noqa: BLE001
                self.ok = False
                log.warning("torch.compile failed (%s: %s); continuing without compilation",
                            type(exc).__name__, str(exc).splitlines()[0][:200])
        return self.module(*args)


def build_backbone(cfg: PretrainConfig) -> nn.Module:
    from chadavit.models import create_model

    try:
        return create_model(cfg.model.name, **cfg.model.overrides)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"model: {exc}") from exc


def param_groups(net: DinoNet) -> list[dict[str, Any]]:
    """No weight decay on biases, norms, 1-D parameters and the backbone's declared tokens/embeddings."""
    skip = set()
    nwd = getattr(net.backbone, "no_weight_decay", None)
    if callable(nwd):
        skip = {f"backbone.{n}" for n in nwd()}
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or name in skip else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]


def cpu_threads(cfg: PretrainConfig, dist_info: D.DistInfo) -> int:
    """Intra-op threads: ``train.threads``, or (0 = auto) the cores left after the loader workers.

    Why: on a small CPU machine, more OpenMP threads than free cores makes every op spin-wait; measured
    on 2 shared cores, 2 threads + 2 workers ran 10x slower than 1 thread + 2 workers.
    """
    if cfg.train.threads > 0:
        return cfg.train.threads
    if dist_info.device.type == "cuda":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // dist_info.world_size - cfg.data.num_workers)


def step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(step), 13]).generate_state(1)[0])


@dataclass
class Schedules:
    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray


def make_schedules(cfg: PretrainConfig, steps_per_epoch: int, global_batch: int) -> Schedules:
    total = cfg.train.epochs * steps_per_epoch
    o, d = cfg.optim, cfg.dino
    lr = o.lr * global_batch / 256.0
    return Schedules(
        lr=cosine_schedule(lr, o.min_lr, total, int(round(o.warmup_epochs * steps_per_epoch))),
        wd=cosine_schedule(o.weight_decay, o.weight_decay_end, total),
        momentum=cosine_schedule(d.momentum_teacher, 1.0, total),
        teacher_temp=teacher_temp_schedule(d.warmup_teacher_temp, d.teacher_temp,
                                           int(round(d.warmup_teacher_temp_epochs * steps_per_epoch)), total),
    )


def _amp_context(cfg: PretrainConfig, device: torch.device):  # noqa: ANN202
    use = cfg.train.amp == "bf16" or (cfg.train.amp == "auto" and device.type == "cuda")
    if use:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _truncate_jsonl(path: Path, last_step: int) -> None:
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("step", 0) <= last_step:
            keep.append(line)
    path.write_text("".join(x + "\n" for x in keep))


def benchmark_loader(loader: Any, sampler: EpochBatchSampler, n_batches: int, warmup: int = 1) -> float:
    """Images per second the loader delivers on its own, in steady state.

    The first ``warmup`` batches (one per worker: process start, store opening, preload) are excluded.
    """
    n_batches = min(n_batches, sampler.steps_per_epoch)
    if n_batches < warmup + 2:
        return float("nan")
    sampler.set_epoch(10_000_000)  # an epoch never trained
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    t0, imgs = time.perf_counter(), 0
    for _ in range(n_batches - warmup):
        b = next(it)
        imgs += b.batch_size
    dt = time.perf_counter() - t0
    del it
    return imgs / max(dt, 1e-9)


def plot_loss(metrics_path: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
    recs = [r for r in recs if "loss" in r]
    if not recs:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in recs], [r["loss"] for r in recs], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("DINO loss")
    ax.set_title("pretraining loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)


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
        state = load_checkpoint(ckpt_path)
        saved = config_from_dict(state["config"])
        for section in ("model", "dino", "augment", "data"):
            a, b = getattr(saved, section), getattr(cfg, section)
            if section == "data":
                a, b = ((a.paths, a.synthetic, a.batch_size, a.filter, a.split_channels, a.cells),
                        (b.paths, b.synthetic, b.batch_size, b.filter, b.split_channels, b.cells))
            if a != b:
                raise ResumeError(f"{ckpt_path}: the checkpoint was written with a different '{section}' config; "
                                  "use a new train.out_dir or train.resume=false")
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
    tb = None
    if is_main:
        _truncate_jsonl(metrics_path, step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tensorboard"), purge_step=step if step else None)
        except Exception as exc:  # noqa: BLE001 - logging extras must never stop training
            log.warning("TensorBoard logging disabled: %s", exc)

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
                with _amp_context(cfg, device):
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
                if is_main and (step % cfg.train.log_every == 0 or step == stop_step or step == 1):
                    rec = {"step": step, "epoch": round(step / spe, 4), "loss": loss_value,
                           "lr": float(sched.lr[step - 1]), "wd": float(sched.wd[step - 1]),
                           "momentum": m, "teacher_temp": float(sched.teacher_temp[step - 1]),
                           "grad_norm": grad_norm, "skipped_images": skipped_total,
                           "train_img_s": compute_imgs / compute_time if compute_time else None,
                           "time_s": round(time.perf_counter() - t_start, 2)}
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    if tb is not None:
                        for k in ("loss", "lr", "wd", "momentum", "teacher_temp", "grad_norm", "train_img_s"):
                            if rec[k] is not None and not (isinstance(rec[k], float) and math.isnan(rec[k])):
                                tb.add_scalar(f"pretrain/{k}", rec[k], step)
                if cfg.train.checkpoint_every > 0 and step % cfg.train.checkpoint_every == 0 and step < stop_step:
                    checkpoint()
                if step >= stop_step:
                    break
                t_wait = time.perf_counter()
        checkpoint()
    finally:
        if progress is not None:
            progress.close()
        if tb is not None:
            tb.close()

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


def run_learning_check(cfg: PretrainConfig, backbone: nn.Module, normalization: str,
                       device: torch.device) -> dict[str, Any]:
    """kNN localisation accuracy of the pretrained backbone vs the mean over ``check.random_inits`` random inits."""
    from chadavit.pretrain.knn import learning_check

    c = cfg.check
    randoms = []
    for r in range(max(1, c.random_inits)):
        with torch.random.fork_rng():
            torch.manual_seed(cfg.train.seed + 1 + r)
            rnd = build_backbone(cfg)
            rnd.config = backbone.config.replace()  # same input scaling (incl. "dataset" statistics) as the trained one
            randoms.append(rnd.to(device))
    res = learning_check(backbone, randoms, c.channels, c.n_train, c.n_test, c.size, c.seed, c.k,
                         normalization, device)
    log.info("learning check (kNN localisation on held-out synthetic cells): trained %.3f vs random init %.3f "
             "(mean of %d; chance %.3f)", res["knn_trained"], res["knn_random"], len(randoms), res["chance"])
    return res
