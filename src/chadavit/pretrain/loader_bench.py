"""How fast the data loader alone delivers images, to tell a data-bound run from a compute-bound one."""

from __future__ import annotations

import time
from typing import Any

from chadavit.pretrain.loader import EpochBatchSampler


def benchmark_loader(loader: Any, sampler: EpochBatchSampler, n_batches: int, warmup: int = 1) -> float:
    """Images per second the loader delivers on its own, in steady state (NaN if too few batches to tell).

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
