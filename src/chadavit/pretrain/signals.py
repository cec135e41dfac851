"""Graceful stop on SIGINT (Ctrl-C) and SIGTERM (Slurm pre-emption): finish the step, checkpoint, exit.

Why: killing in the middle of a step loses everything since the last periodic checkpoint. The handler
only records the signal; the training loop checks it between steps, where the state is consistent, so
the checkpoint written is exactly resumable. A second signal while stopping aborts at once (checkpoints
are written atomically, so this never leaves a torn file).
"""

from __future__ import annotations

import signal
import threading
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

    def __exit__(self, *exc: Any) -> None:
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
