"""Per-iteration schedules, precomputed as arrays (DINO style): linear warm-up then cosine."""

from __future__ import annotations

import numpy as np


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
