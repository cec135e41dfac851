"""Per-iteration schedules, precomputed as arrays (DINO style): linear warm-up then cosine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from chadavit.pretrain.config import PretrainConfig


def cosine_schedule(base: float, final: float, total_steps: int, warmup_steps: int = 0,
                    warmup_start: float = 0.0) -> np.ndarray:
    """``total_steps`` values: linear ``warmup_start -> base`` over ``warmup_steps``, then cosine ``base -> final``."""
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(max(int(warmup_steps), 0), total_steps)
    warm = np.linspace(warmup_start, base, warmup_steps, endpoint=False) if warmup_steps else np.zeros(0)
    rest = total_steps - warmup_steps
    it = np.arange(rest)
    cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * it / max(rest, 1)))
    return np.concatenate([warm, cos]).astype(np.float64)


def teacher_temp_schedule(warmup_temp: float, temp: float, warmup_steps: int, total_steps: int) -> np.ndarray:
    """Linear teacher-temperature warm-up, then constant."""
    total_steps = max(int(total_steps), 1)
    w = min(max(int(warmup_steps), 0), total_steps)
    return np.concatenate([np.linspace(warmup_temp, temp, w), np.full(total_steps - w, temp)])


@dataclass
class Schedules:
    """Per-step values of everything DINO anneals, indexed by the global step."""

    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray


def make_schedules(cfg: PretrainConfig, steps_per_epoch: int, global_batch: int) -> Schedules:
    """All schedules of a run; the learning rate scales linearly with the global batch (``lr * batch / 256``)."""
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
