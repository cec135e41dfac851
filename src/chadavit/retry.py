"""Retry budget with exponential back-off, shared by the IDR client and the dataset downloads."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class RetryPolicy:
    """Retry budget: ``retries`` extra attempts, delays ``backoff * 2**k`` (+ jitter) capped at ``max_backoff``."""

    retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 60.0
    jitter: float = 0.1

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        base *= 1.0 + self.jitter * random.random()
        if retry_after is not None:
            # The server said when to come back: never earlier than that (capped to stay bounded).
            base = max(base, min(retry_after, max(self.max_backoff, 1.0) * 10))
        return base
