"""Verdicts that cannot flatter: medians over seeds, outlier seeds flagged, every loss said task by task.

* A task's score is the **median** over seeds (:func:`score_column`); one wild seed (a probe that diverged,
  an unlucky split) cannot drag it, and :func:`outlier_seeds` flags such a seed in the table.
* :func:`loss_lines` says, model by model and task by task, where it is worse than raw pixels, its own
  random init, or the best baseline.
* :func:`unseen_channel_lines` names the channels a model is scored on that it never saw in training.
* :func:`scrub_paths` keeps the machine's absolute paths out of a report.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LOWER_IS_BETTER = {"mse", "mae"}
OUTLIER_MADS = 4.0  # a seed this many robust standard deviations from the median of the seeds ...
OUTLIER_FLOOR = 0.2  # ... and at least this far (R² units; 20 points for % metrics) is an outlier


def scale(metric: str) -> float:
    """100 for % metrics, 1 for R² and the like: divides a metric onto 0-1."""
    return 100.0 if metric in ("top1", "macro_f1", "nsc", "nscb") or metric.startswith("top1@") else 1.0


def score_column(summary: pd.DataFrame) -> str:
    """The summary column a task's score is read from: ``median`` (over seeds) when present, else ``mean``."""
    return "median" if "median" in summary.columns else "mean"


def outlier_seeds(seeds: Sequence[int], values: Sequence[float], metric: str) -> str:
    """``"seed 3: -7.540"`` for every seed far from the others (see ``OUTLIER_*``); empty when none, with fewer
    than 3 seeds, or for an unbounded metric (MSE, MAE, counts), whose units give no common floor."""
    v = np.asarray(values, np.float64)
    if len(v) < 3 or not np.isfinite(v).all() or metric in LOWER_IS_BETTER or metric.startswith("n_"):
        return ""
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    far = np.abs(v - med) > max(OUTLIER_MADS * mad, OUTLIER_FLOOR * scale(metric))
    return "; ".join(f"seed {s}: {x:.3f}" for s, x, f in zip(seeds, v, far) if f)


def seed_stats(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task, metric): the median over seeds and the outlier seeds (``outliers``, empty if none)."""
    rows = []
    for (model, task, metric), g in results.groupby(["model", "task", "metric"], sort=False):
        rows.append({"model": model, "task": task, "metric": metric, "median": float(g["value"].median()),
                     "outliers": outlier_seeds(g["seed"].tolist(), g["value"].tolist(), str(metric))})
    return pd.DataFrame(rows, columns=["model", "task", "metric", "median", "outliers"])


def outlier_notes(summary: pd.DataFrame, primaries: dict[str, list[str]] | None = None) -> list[str]:
    """Markdown bullet lines, one per (model, task, metric) with outlier seeds (primary metrics only when
    ``primaries`` is given)."""
    if "outliers" not in summary.columns:
        return []
    rows = summary[summary["outliers"].fillna("").astype(str) != ""]
    if primaries is not None:
        keep = {(t, m) for t, ms in primaries.items() for m in ms}
        rows = rows[[(t, m) in keep for t, m in zip(rows["task"], rows["metric"])]]
    return [f"- † {r.model} / {r.task} ({r.metric}): {r.outliers} (median {r.median:.3f}, mean {r.mean:.3f})"
            for r in rows.itertuples(index=False)]


# ---------------------------------------------------------------------------------------------- losses
def losses(summary: pd.DataFrame, primaries: dict[str, list[str]], baselines: Sequence[str]) -> pd.DataFrame:
    """Per (model, task, reference): every case where a trained model scores below a reference.

    References: ``raw pixels``, ``its own random init`` (the ``random init (<model>)`` twin) and ``the best
    baseline``; scores are medians over seeds (means without them); MSE/MAE count lower as better.
    """
    col = score_column(summary)
    base = set(baselines)
    rows = []
    for task, metrics in primaries.items():
        if not metrics:
            continue
        metric = metrics[0]
        sub = summary[(summary["task"] == task) & (summary["metric"] == metric)].dropna(subset=[col])
        score = dict(zip(sub["model"].astype(str), sub[col].astype(float)))
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        bscores = {m: v for m, v in score.items() if m in base}
        best = max(bscores, key=lambda m: sign * bscores[m]) if bscores else None
        for model, v in score.items():
            if model in base:
                continue
            refs = {"raw pixels": "raw_pixels", "its own random init": f"random init ({model})",
                    "the best baseline": best}
            for what, ref in refs.items():
                if ref is not None and ref in score and sign * (v - score[ref]) < 0:
                    rows.append({"model": model, "task": task, "metric": metric, "reference": what, "ref_model": ref,
                                 "score": v, "ref_score": score[ref]})
    return pd.DataFrame(rows, columns=["model", "task", "metric", "reference", "ref_model", "score", "ref_score"])


def loss_lines(summary: pd.DataFrame, primaries: dict[str, list[str]], baselines: Sequence[str],
               bullet: str = "- ") -> list[str]:
    """One line per (trained model, reference): the tasks where the model is worse, with both scores; a model
    that is worse than nothing gets a line saying so."""
    lost = losses(summary, primaries, baselines)
    col = score_column(summary)
    base = set(baselines)
    models = [m for m in dict.fromkeys(summary["model"].astype(str)) if m not in base]
    lines = []
    for model in models:
        g = lost[lost["model"] == model]
        if g.empty:
            if summary[(summary["model"] == model)][col].notna().any():
                lines.append(f"{bullet}{model}: worse than none of raw pixels, its own random init and the best "
                             "baseline on any task")
            continue
        for ref, r in g.groupby("reference", sort=False):
            tasks = ", ".join(f"{t} ({s:.3g} vs {b:.3g})" for t, s, b in zip(r["task"], r["score"], r["ref_score"]))
            lines.append(f"{bullet}{model} is worse than {ref} on {len(r)} of {len(primaries)} tasks: {tasks}")
    return lines


# ---------------------------------------------------------------------------------------------- channels, paths
def unseen_channel_lines(models: Sequence[Any], datasets: dict[str, Any], tasks: Sequence[Any],
                         baselines: Sequence[str] = ()) -> list[str]:
    """A line per trained model scored on channel names outside its channel vocabulary (identity-embedding
    models: they get the learned fallback embedding there), naming the channels and the datasets."""
    from chadavit.models.config import channel_vocabulary

    used = {t.dataset for t in tasks}
    lines = []
    for lm in models:
        vocab = channel_vocabulary(getattr(lm.model, "config", None))
        if vocab is None or lm.label in baselines or lm.label.startswith("random init"):
            continue
        unseen: dict[str, list[str]] = {}
        for name, data in datasets.items():
            if data is None or name not in used:
                continue
            names = {n for nm in data.channel_names for n in nm}
            new = sorted(names - vocab)
            if new:
                unseen[name] = new
        if unseen:
            where = "; ".join(f"{d}: {', '.join(c)}" for d, c in unseen.items())
            lines.append(f"- {lm.label} is scored on channels it never saw in training (not in its channel "
                         f"vocabulary; they get its fallback embedding): {where}")
    return lines


_ABS = re.compile(r"(?<![\w./~-])/(?:[^\s/`'\"|()<>\[\]]+/)*[^\s/`'\"|()<>\[\],;]+")


def scrub_paths(text: str, root: str | os.PathLike[str] | None = None) -> str:
    """``text`` with every absolute path made relative to ``root`` (default: the working folder) when under it,
    else shortened to ``…/<parent>/<name>``: reports carry no absolute paths of the machine."""
    base = Path(root or Path.cwd()).resolve()

    def repl(m: re.Match[str]) -> str:
        p = Path(m.group(0))
        try:
            return str(p.resolve().relative_to(base))
        except (ValueError, OSError):
            parts = p.parts[-2:]
            return "…/" + "/".join(parts)

    return _ABS.sub(repl, text)
