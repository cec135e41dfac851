"""What a person watching a run sees: a tqdm bar in a terminal, plain timed lines in a log file.

Why: tqdm bars written to a file are a stream of carriage returns and cursor codes, and a batch job's
log stays empty for minutes. When stdout is not a terminal, one plain line is printed every
``every_s`` seconds (and at the first and last step) instead.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

# metrics shown on the progress line, with their short labels and formats
SHOWN = (("loss", "loss", "{:.4f}"), ("entropy_ratio", "H/lnK", "{:.3f}"), ("kl_teacher_student", "KL", "{:.3f}"),
         ("emb_mean_cos", "cos", "{:.3f}"), ("emb_std", "std", "{:.4f}"))


def _clock(s: float) -> str:
    s = int(max(s, 0))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def describe(values: dict[str, Any]) -> dict[str, str]:
    """Short label -> formatted value for the metrics present and finite in ``values``."""
    out = {}
    for key, label, fmt in SHOWN:
        v = values.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[label] = fmt.format(v)
    return out


class Progress:
    """``update(step, values)`` after every step; ``close()`` at the end."""

    def __init__(self, total: int, initial: int, enabled: bool = True, every_s: float = 30.0,
                 stream: TextIO | None = None, desc: str = "pretrain") -> None:
        self.total, self.initial, self.every_s, self.desc = total, initial, every_s, desc
        self.stream = stream if stream is not None else sys.stdout
        self.values: dict[str, Any] = {}
        self.bar = None
        self.plain = False
        self.t0 = time.monotonic()
        self.last_print = -float("inf")
        self.first: tuple[int, float] | None = None
        if not enabled:
            return
        if _isatty(self.stream) and _isatty(sys.stderr):  # the bar goes to stderr
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, disable=None)
        else:
            self.plain = True

    def update(self, step: int, values: dict[str, Any] | None = None) -> None:
        if values:
            self.values.update(values)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(describe(self.values), refresh=False)
        elif self.plain:
            now = time.monotonic()
            if now - self.last_print >= self.every_s or step == self.total or step == self.initial + 1:
                self.last_print = now
                print(self.line(step, now), file=self.stream, flush=True)

    def line(self, step: int, now: float) -> str:
        """``pretrain step 40/120 (33%) | loss 4.1 | H/lnK 0.93 | ... | elapsed 1m20s, ETA 2m40s``."""
        if self.first is None:  # the first step carries one-off costs: the rate is measured after it
            self.first = (step, now)
        elapsed = now - self.t0
        parts = [f"{self.desc} step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {v}" for k, v in describe(self.values).items()]
        done, span = step - self.first[0], now - self.first[1]
        rate = done / span if span > 0 and done > 0 else 0.0
        eta = f", ETA {_clock((self.total - step) / rate)}" if rate > 0 and step < self.total else ""
        parts.append(f"elapsed {_clock(elapsed)}{eta}")
        return " | ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
