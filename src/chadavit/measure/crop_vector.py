"""One single-cell crop -> one vector of CellProfiler measurements, and a small process pool for many crops.

Why a pool: measuring a crop is about 80 ms of single-threaded numpy/scipy (cp_measure), and an evaluation measures
thousands of crops while the model sits idle, so on the 2-core machine two worker processes nearly halve the
wall time. Workers are started with ``spawn`` (never ``fork`` a process that holds torch's thread pools), import
only this core package (no torch), live as long as the process, and give the same numbers as the serial path:
each crop is measured alone, in the same function.

When: by default only under the ``chadavit`` command (``chadavit eval``, ``chadavit demo``, ``python -m
chadavit``), whose entry point is guarded. ``spawn`` re-imports the main module in each worker, so in a user's
script without an ``if __name__ == "__main__":`` guard the script's top-level code would run again there; library
use therefore measures in one process unless ``CHADAVIT_CP_WORKERS=N`` asks for workers (``1`` turns them off
everywhere).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from chadavit.measure.cellprofiler import cellprofiler_columns, measure_objects, to_unit
from chadavit.measure.objects import crop_objects

log = logging.getLogger(__name__)
WORKERS_ENV = "CHADAVIT_CP_WORKERS"
MIN_CROPS_FOR_POOL = 32  # below this, starting workers costs more than it saves
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def crop_vector(img: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """One crop ``(C, H, W)`` -> the ``cp_`` measurements of its central cell, in :func:`cellprofiler_columns`
    order (NaN -> 0)."""
    unit = to_unit(img)
    # no Background object here: it did not help any `real` task and CellProfiler does not measure it by default
    # (docs/evaluation.md); ``chadavit embed`` crop modes write it
    objects = crop_objects(unit, names).named(image=True)
    df, _ = measure_objects(unit, names, objects)
    cols = cellprofiler_columns(names, list(objects))
    row = df.reindex(columns=cols).iloc[0] if len(df) else np.full(len(cols), np.nan)
    return np.nan_to_num(np.asarray(row, np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _started_by_chadavit() -> bool:
    """True under the ``chadavit`` console script or ``python -m chadavit`` (both guard their entry point)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    script = Path(getattr(main, "__file__", "") or "").name
    return getattr(spec, "name", "") == "chadavit.__main__" or script == "chadavit"


def default_workers() -> int:
    """``CHADAVIT_CP_WORKERS`` when set (1 turns the pool off); under the ``chadavit`` command the CPUs this
    process may use, at most 4; else 1 (see the module docstring)."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("%s=%r is not a whole number; measuring in one process", WORKERS_ENV, env)
            return 1
    if not _started_by_chadavit():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started with ``spawn`` (why: the module docstring); every CellProfiler pool
    (this module's, and :mod:`chadavit.models.references.ahead`'s) is made here."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != workers:
        _shutdown()
        _pool = spawn_pool(workers)
        _pool_size = workers
    return _pool


def _shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


atexit.register(_shutdown)


def crop_vectors(images: Sequence[np.ndarray], names: Sequence[Sequence[str]], workers: int | None = None
                 ) -> list[np.ndarray]:
    """:func:`crop_vector` of each crop, in order; in ``workers`` processes when there are enough crops.

    A pool that breaks (a worker killed) is reported and the crops are measured here instead; an error raised
    by a measurement itself propagates as in the serial path.
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(images) < MIN_CROPS_FOR_POOL:
        return [crop_vector(im, nm) for im, nm in zip(images, names)]
    chunk = max(1, len(images) // (workers * 4))
    try:
        return list(_get_pool(workers).map(crop_vector, images, [tuple(n) for n in names], chunksize=chunk))
    except BrokenProcessPool as exc:
        log.warning("CellProfiler worker processes stopped (%s); measuring in this process", exc)
        _shutdown()
        return [crop_vector(im, nm) for im, nm in zip(images, names)]
