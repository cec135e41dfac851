"""CellProfiler measurements started ahead, in background processes, and collected when a read-out needs them.

Why: an evaluation suite runs its probes on one thread (``threads: 1``), so on the 2-core machine one core sits
idle while the models' rows run, and the CellProfiler rows later measure every crop while the probes wait.
:func:`measure_ahead` hands crops to background worker processes as soon as the suite knows it will need them:
one worker fewer than the CellProfiler pool would use (:func:`~chadavit.measure.crop_vector.default_workers`),
i.e. one per core that the one-threaded probes leave idle. The CellProfiler encoder
(:class:`~chadavit.models.references.cellprofiler.CellProfilerEncoder`) then collects each crop's vector with
:func:`take` instead of measuring it. A crop whose job has not started when it is needed is taken back
(cancelled) and measured there and then by the encoder, with every worker of the usual pool, so the head start
never makes a read-out wait for a queue. The numbers are the same: each crop is measured alone, by the same
function (:func:`chadavit.measure.crop_vector.crop_vectors`) as in the serial path.

Workers are started with ``spawn`` only where :func:`~chadavit.measure.crop_vector.default_workers` allows a pool
(the ``chadavit`` command, or ``CHADAVIT_CP_WORKERS=N`` with N > 1); elsewhere :func:`measure_ahead` does nothing
and the crops are measured when read, as before. A worker that fails or dies only loses the head start:
:func:`take` answers None and the crop is measured in this process.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from chadavit.measure.crop_vector import crop_vectors, default_workers, spawn_pool

log = logging.getLogger(__name__)
CHUNK = 4  # crops per job: ~0.3 s of work, small enough that the first read-out waits little
MAX_PENDING = 200_000  # crops held at most (measured or not); beyond this, measure_ahead refuses new ones
MAX_QUEUED_BYTES = 1 << 30  # pixels waiting in jobs not yet finished; beyond this, the rest is measured when read

_pool: ProcessPoolExecutor | None = None
_Job = Future  # one job: crop_vectors of CHUNK crops
_pending: dict[bytes, tuple[_Job, int]] = {}  # crop key -> (its job, its place in the job)
_job_keys: dict[_Job, list[bytes]] = {}  # job -> its crops' keys
_job_bytes: dict[_Job, int] = {}  # job -> the bytes of its crops (held until the job has run)


def crop_key(image: np.ndarray, names: Sequence[str]) -> bytes:
    """The identity of one crop and its channel names (pixels, dtype, names): the measurement depends on nothing
    else."""
    return hashlib.sha1(np.ascontiguousarray(image).tobytes() + image.dtype.str.encode()
                        + "|".join(names).encode()).digest()


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = spawn_pool(workers)
    return _pool


def shutdown() -> None:
    """Stop the workers and forget every crop not yet collected."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
    _pending.clear()
    _job_keys.clear()
    _job_bytes.clear()


atexit.register(shutdown)


def measure_ahead(images: Sequence[np.ndarray], names: Sequence[Sequence[str]], workers: int | None = None) -> int:
    """Start measuring these crops in background workers, in order; returns how many were started.

    Crops already started are not started again, and none once :data:`MAX_QUEUED_BYTES` of pixels wait in jobs
    not yet run (a large suite's later crops are measured when read). ``workers`` defaults to one fewer than
    :func:`~chadavit.measure.crop_vector.default_workers`; where that allows no pool (library use without opt-in)
    nothing starts.
    """
    if workers is None:
        pool_size = default_workers()
        workers = pool_size - 1 if pool_size > 1 else 0
    if workers < 1:
        return 0
    keys: dict[bytes, int] = {}  # new crops, in order
    for i, (im, nm) in enumerate(zip(images, names)):
        k = crop_key(im, nm)
        if k not in _pending:
            keys.setdefault(k, i)
    todo, new = list(keys.values()), list(keys)
    if not todo or len(_pending) + len(todo) > MAX_PENDING:
        return 0
    pool = _get_pool(workers)
    for done in [job for job in _job_bytes if job.done()]:
        del _job_bytes[done]
    queued = sum(_job_bytes.values())
    started = 0
    for s in range(0, len(todo), CHUNK):
        idx = todo[s : s + CHUNK]
        size = sum(int(np.asarray(images[i]).nbytes) for i in idx)
        if queued + size > MAX_QUEUED_BYTES:
            break
        job = pool.submit(crop_vectors, [images[i] for i in idx], [tuple(names[i]) for i in idx], 1)
        _job_keys[job], _job_bytes[job] = new[s : s + CHUNK], size
        for j, k in enumerate(_job_keys[job]):
            _pending[k] = (job, j)
        queued += size
        started += len(idx)
    return started


def is_pending(key: bytes) -> bool:
    return key in _pending


def take_back(keys: Sequence[bytes]) -> int:
    """Cancel the jobs of these crops that have not started (the caller measures them now, with every core, rather
    than wait for the queue); every crop of a cancelled job stops being pending. Returns how many crops that is."""
    n = 0
    for k in keys:
        got = _pending.get(k)
        if got is not None and got[0].cancel():
            for other in _job_keys.pop(got[0], []):
                _pending.pop(other, None)
                n += 1
    return n


def take(key: bytes) -> np.ndarray | None:
    """The crop's vector from its background job (waiting for it if it is running), or None when the caller must
    measure it: never started here, or its job was cancelled or failed."""
    got = _pending.pop(key, None)
    if got is None:
        return None
    job, j = got
    try:
        vec = job.result()[j]
    except Exception as exc:  # noqa: BLE001 - a lost head start, not an error: the caller measures the crop
        if _job_keys.pop(job, None) is not None:  # said once per job
            log.warning("CellProfiler measurements started ahead failed (%s: %s); measuring them here",
                        type(exc).__name__, exc)
        return None
    if not any(k in _pending for k in _job_keys.get(job, ())):
        _job_keys.pop(job, None)  # every crop of the job collected
    return vec


def wait() -> None:
    """Wait until every job started ahead has finished (a benchmark's or a test's steady state)."""
    for job, _ in list(_pending.values()):
        with contextlib.suppress(Exception):  # take() reports a failure when the crop is read
            job.result()
