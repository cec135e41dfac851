"""Retry budget with exponential back-off, shared by the IDR client and the dataset downloads."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass
class RetryPolicy:
    """Retry budget: ``retries`` extra attempts, delays ``backoff * 2**k`` (+ jitter) capped at ``max_backoff``.

    ``timeout`` bounds each wait for the server; ``stall_seconds`` / ``stall_bytes`` bound a transfer that
    trickles (a byte a second never trips a socket timeout): an attempt that receives fewer than
    ``stall_bytes`` in ``stall_seconds`` is abandoned and retried (resuming where it stopped).
    """

    retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 60.0
    jitter: float = 0.1
    stall_seconds: float = 60.0
    stall_bytes: int = 64 * 1024

    def stall_watch(self) -> StallWatch:
        return StallWatch(self.stall_seconds, self.stall_bytes)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        base *= 1.0 + self.jitter * random.random()
        if retry_after is not None:
            # The server said when to come back: never earlier than that (capped to stay bounded).
            base = max(base, min(retry_after, max(self.max_backoff, 1.0) * 10))
        return base


class StalledError(TimeoutError):
    """A transfer received too little for too long (see :attr:`RetryPolicy.stall_seconds`); retried like a timeout."""


@dataclass
class StallWatch:
    """Feed it the size of every block received; it raises :class:`StalledError` when a window gets too little."""

    seconds: float
    min_bytes: int
    _start: float = field(default_factory=time.monotonic)
    _got: int = 0

    def received(self, n: int, what: str = "the transfer") -> None:
        self._got += n
        now = time.monotonic()
        if now - self._start < self.seconds:
            return
        if self._got < self.min_bytes:
            raise StalledError(f"{what}: stalled, {self._got:,} bytes in {now - self._start:.0f} s "
                               f"(less than {self.min_bytes:,} per {self.seconds:.0f} s)")
        self._start, self._got = now, 0
