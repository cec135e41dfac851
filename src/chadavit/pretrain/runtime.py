"""Per-process runtime settings of a training run: CPU threads, mixed precision, per-step RNG seeds."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch

from chadavit.pretrain import distributed as D
from chadavit.pretrain.config import PretrainConfig


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
    """The global torch seed of one step: resume re-seeds from it, so drop-path draws match an unbroken run."""
    return int(np.random.SeedSequence([int(seed), int(step), 13]).generate_state(1)[0])


def amp_context(cfg: PretrainConfig, device: torch.device) -> Any:
    """bf16 autocast when asked (``train.amp=bf16``) or on CUDA with ``auto``; otherwise a no-op."""
    use = cfg.train.amp == "bf16" or (cfg.train.amp == "auto" and device.type == "cuda")
    if use:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
