"""Graceful stop on SIGINT (Ctrl-C) and SIGTERM (Slurm pre-emption): finish the step, checkpoint, exit.

Why: killing in the middle of a step loses everything since the last periodic checkpoint. The handler
only records the signal; the training loop checks it between steps, where the state is consistent, so
the checkpoint written is exactly resumable. A second signal while stopping aborts at once (checkpoints
are written atomically, so this never leaves a torn file).
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


def shutdown_workers(loader: Any) -> None:
    """Stop a DataLoader's persistent workers now, cleanly (they exit on the loader's own shutdown message).

    Why: shielded workers ignore SIGTERM, so they must not be left for the interpreter's exit, which
    terminates daemonic children with SIGTERM and waits for them. ``_shutdown_workers`` is the call
    PyTorch itself makes when an iterator is garbage-collected; without it (other loaders) this does nothing.
    """
    it = getattr(loader, "_iterator", None)
    stop = getattr(it, "_shutdown_workers", None)
    if callable(stop):
        stop()
        loader._iterator = None
