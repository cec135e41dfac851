"""Per-process runtime settings of a training run: CPU threads, the allocator, mixed precision, RNG seeds."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
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


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc <malloc.h> mallopt parameters
KEEP_FREED_ENV = "CHADAVIT_KEEP_FREED_MEMORY"


def keep_freed_memory(device: torch.device) -> bool:
    """Let glibc keep freed memory for reuse instead of unmapping it (CPU training only).

    Why: PyTorch's CPU tensors come from ``malloc``; glibc serves large blocks with ``mmap`` and
    returns them on ``free``, so every training step pays page faults on its fresh activations and
    gradients. Serving everything from the heap and never trimming it made a ``chada_vit_moyen``
    step 15 % faster in fp32 and 13 % in bf16 on a 2-core AVX-512 VM at the same peak RSS
    (docs/models.md, "Speed"); embedding gained nothing, so only pretraining calls this.
    Skipped off glibc, on CUDA, under another allocator (``LD_PRELOAD``) or explicit ``GLIBC_TUNABLES``,
    and with ``CHADAVIT_KEEP_FREED_MEMORY=0``. Returns whether it was applied.
    """
    if (device.type != "cpu" or platform.system() != "Linux" or os.environ.get(KEEP_FREED_ENV, "1") == "0"
            or "malloc" in os.environ.get("LD_PRELOAD", "") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    logging.getLogger("chadavit.pretrain").debug("glibc malloc: no mmap, trim threshold 1 GiB (%s)", ok)
    return ok


def step_seed(seed: int, step: int) -> int:
    """The global torch seed of one step: resume re-seeds from it, so drop-path draws match an unbroken run."""
    return int(np.random.SeedSequence([int(seed), int(step), 13]).generate_state(1)[0])


def amp_context(cfg: PretrainConfig, device: torch.device) -> Any:
    """The training step's autocast for ``train.precision`` (:mod:`chadavit.precision`); a no-op for fp32."""
    from chadavit.precision import resolve_train_precision, train_autocast

    return train_autocast(resolve_train_precision(cfg.train.precision, device), device)
