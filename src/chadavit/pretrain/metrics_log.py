"""Per-interval metrics of a run: ``metrics.jsonl`` (one JSON object a line) and TensorBoard scalars."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, record)`` of every whole JSON object in ``path``; a line torn by a kill is skipped."""
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append((line, rec))
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` (torn or invalid lines skipped)."""
    return [rec for _, rec in _records(path)]


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop records after ``last_step`` (written after the checkpoint a resume starts from) and torn lines."""
    if path.exists():
        path.write_text("".join(line + "\n" for line, rec in _records(path) if rec.get("step", 0) <= last_step))


def finite_or_none(x: Any) -> Any:
    """JSON has no NaN: non-finite floats become ``None`` (null) so every file stays valid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class MetricsLog:
    """Appends records to ``metrics.jsonl`` and mirrors numeric fields to TensorBoard when it is installed."""

    def __init__(self, out: Path, step: int) -> None:
        self.path = out / "metrics.jsonl"
        truncate_jsonl(self.path, step)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=step if step else None)
        except Exception as exc:  # noqa: BLE001 - logging extras must never stop training
            log.warning("TensorBoard logging disabled: %s", exc)

    def write(self, rec: dict[str, Any]) -> None:
        rec = {k: finite_or_none(v) for k, v in rec.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in rec.items():
                if k not in ("step", "epoch", "time_s") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"pretrain/{k}", v, rec["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
