"""Deciding that a run has collapsed, and saying once, in plain words, what to change.

A run is called collapsed when, for ``patience`` logging intervals in a row, either the DINO loss is
within 1% of ln(out_dim) (teacher and student both uniform: nothing is learned) or the embedding spread
``emb_std_ratio`` is below ``std_ratio_floor`` (every image gets the same embedding).

Records up to ``judge_from_step`` (the learning-rate warm-up) are not judged: a healthy DINO run passes
through loss = ln(out_dim) while the teacher warms up (measured on the demo preset: 4 intervals in a row
within 1% of ln(out_dim) at steps 20-35 of 44 warm-up steps, then a steady fall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ADVICE = ("lower dino.teacher_temp (e.g. 0.04), use a smaller dino.out_dim (a few times the batch size), "
          "check that crops contain cells (augment.global_scale, data.filter), or lower optim.lr")


@dataclass
class CollapseDetector:
    """Feed it each logged record; ``update`` returns a warning message the first time collapse is sustained."""

    out_dim: int
    patience: int = 5
    loss_tolerance: float = 0.01
    std_ratio_floor: float = 0.01
    judge_from_step: int = 0
    stops: bool = False  # train.stop_on_collapse: the message says the run stops instead of suggesting it
    streak: int = 0
    collapsed: bool = False
    reason: str | None = None
    first_step: int | None = None
    _history: list[str] = field(default_factory=list)

    def signs(self, rec: dict[str, Any]) -> str | None:
        """Why this record looks collapsed, or ``None``."""
        ln_k = math.log(self.out_dim)
        loss = rec.get("loss")
        if loss is not None and math.isfinite(loss) and abs(loss - ln_k) <= self.loss_tolerance * ln_k:
            return f"the DINO loss ({loss:.4f}) is within {self.loss_tolerance:.0%} of ln(out_dim) = {ln_k:.4f}"
        r = rec.get("emb_std_ratio")
        if r is not None and math.isfinite(r) and r < self.std_ratio_floor:
            return (f"the embeddings barely differ between images (per-dimension std {rec.get('emb_std'):.2e}, "
                    f"{r:.3f} of an isotropic spread; mean cosine {rec.get('emb_mean_cos'):.4f})")
        return None

    def update(self, rec: dict[str, Any]) -> str | None:
        step = rec.get("step")
        if isinstance(step, int) and step <= self.judge_from_step:
            return None
        why = self.signs(rec)
        self.streak = self.streak + 1 if why else 0
        if why and self.streak == 1:
            self.first_step = rec.get("step")
        if why and self.streak >= self.patience and not self.collapsed:
            self.collapsed = True
            self.reason = why
            return (f"training looks COLLAPSED since step {self.first_step} ({self.streak} logging intervals): "
                    f"{why}. The features will not be useful. To fix: {ADVICE}. " +
                    ("Stopping now (train.stop_on_collapse=true)." if self.stops else
                     "Set train.stop_on_collapse=true to stop such runs automatically."))
        return None
