"""Signals as long runs need them: stop at a safe point, keep what is finished, say how to resume.

Two policies, one module:

* :func:`sigterm_as_interrupt`: SIGTERM raises KeyboardInterrupt, like Ctrl-C, for commands whose
  ``except KeyboardInterrupt`` already keeps what they finished (``embed``, ``idr build``). Batch schedulers
  (Slurm) send SIGTERM before they kill a job.
* :class:`StopRequest`: SIGINT and SIGTERM are only recorded; a loop checks :meth:`StopRequest.requested`
  between steps, where its state is consistent, so the checkpoint it writes is exactly resumable
  (pretraining). A second signal while stopping aborts at once.

:func:`children_shielded` starts worker processes with both signals blocked, so that only the main process
decides when to stop.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager installing the handlers (main thread only) and restoring the previous ones on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # second signal: stop now
            self.__exit__()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def requested(self, distributed: bool = False, device: Any = None) -> bool:
        """True when any process got a signal (all-reduced under DDP so every rank stops at the same step)."""
        flag = self.signum is not None
        if distributed:
            import torch
            import torch.distributed as dist

            t = torch.tensor([1.0 if flag else 0.0], device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag


@contextlib.contextmanager
def children_shielded() -> Iterator[None]:
    """Start loader workers with SIGINT/SIGTERM blocked; they inherit the mask and never see either signal.

    Why: Ctrl-C and Slurm signal every process of the job. A worker killed by the signal makes PyTorch raise
    "DataLoader worker is killed" in the main process at an arbitrary instant (from its SIGCHLD handler),
    possibly mid-step; shielded workers keep serving batches until the main process stops at a step boundary.
    A signal arriving while blocked here stays pending and is delivered to this process right after.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt (main thread only: signals cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
