"""The end of a run, for people (a short text block) and for programs (``summary.json``, always valid JSON)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from chadavit.atomic import write_text_atomic
from chadavit.pretrain.metrics_log import finite_or_none


def clean(summary: dict[str, Any]) -> dict[str, Any]:
    """Public keys only, with NaN/inf replaced by ``None`` (JSON ``null``)."""
    return {k: finite_or_none(v) for k, v in summary.items() if not k.startswith("_")}


def write_summary(summary: dict[str, Any], path: Path) -> None:
    """Write ``summary.json`` atomically; ``allow_nan=False`` guarantees no ``NaN`` token ever reaches the file."""
    write_text_atomic(path, json.dumps(clean(summary), indent=2, default=str, allow_nan=False) + "\n")


def read_summary(path: Path) -> dict[str, Any] | None:
    """A previous run's good summary, or ``None`` when absent, unreadable or holding NaN (older versions wrote it)."""

    def reject(token: str) -> None:
        raise ValueError(f"not valid JSON: {token}")

    try:
        data = json.loads(path.read_text(), parse_constant=reject)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def num(v: Any, fmt: str, none: str = "n/a") -> str:
    if isinstance(v, (int, float)) and not (isinstance(v, float) and not math.isfinite(v)):
        return fmt.format(v)
    return none


def finished_line(s: dict[str, Any]) -> list[str]:
    """One line when this invocation found the run already finished and only reported it."""
    if not s.get("already_finished"):
        return []
    return [(f"nothing to do: {s.get('out_dir')} already holds a finished run; reporting it "
             "(use a new output folder, or raise train.epochs, to train more)")]


def collapse_line(s: dict[str, Any]) -> list[str]:
    """The collapse verdict, in words (empty for summaries that predate monitoring)."""
    if s.get("collapsed"):
        stop = " - stopped early by train.stop_on_collapse" if s.get("stopped") == "collapse" else ""
        return [f"verdict: COLLAPSED{stop}: {s.get('collapse_reason')}"]
    if s.get("collapsed") is False:
        return ["verdict: no collapse detected"]
    return []


def format_run_summary(s: dict[str, Any]) -> str:
    """A few lines a person reads at the end of ``chadavit pretrain``; says plainly whether the run collapsed."""
    lines = finished_line(s)
    lines.append(f"pretraining: {s.get('steps')}/{s.get('total_steps')} steps, final DINO loss "
                 f"{num(s.get('final_loss'), '{:.4f}')}, {num(s.get('wall_s'), '{:.0f}')} s")
    lines.append(f"throughput: training {num(s.get('train_img_s'), '{:.1f}')} images/s, data loading "
                 f"{num(s.get('loader_img_s'), '{:.1f}')} images/s, waiting for data "
                 f"{num(s.get('data_wait_s'), '{:.1f}')} s")
    last = s.get("last_metrics") or {}
    if last:
        lines.append("collapse signals (last interval): teacher entropy "
                     f"{num(last.get('entropy_ratio'), '{:.3f}')} x ln(out_dim), KL(teacher||student) "
                     f"{num(last.get('kl_teacher_student'), '{:.3f}')}, embedding mean cosine "
                     f"{num(last.get('emb_mean_cos'), '{:.3f}')}, std {num(last.get('emb_std'), '{:.4f}')}")
    lines += collapse_line(s)
    if "knn_trained" in s:
        lines.append(f"learning check (kNN localisation, chance {num(s.get('chance'), '{:.2f}')}): trained "
                     f"{num(s.get('knn_trained'), '{:.3f}')} vs random init {num(s.get('knn_random'), '{:.3f}')}")
    if s.get("skipped_images"):
        lines.append(f"skipped unreadable images: {s['skipped_images']}")
    lines.append(f"outputs: backbone {s.get('backbone')}, checkpoint {s.get('checkpoint')}, "
                 f"summary {Path(str(s.get('out_dir'))) / 'summary.json'}")
    return "\n".join(lines)
