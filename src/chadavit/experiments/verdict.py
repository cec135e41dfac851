"""Task by task, on medians over seeds: is a model worse than raw pixels, its own random init, the best baseline?

The judging rules are :mod:`chadavit.evaluation.judging` (``score_column``: the median over seeds when the
summary has one; ``losses``: where a model scores below a reference, MSE/MAE counting lower as better). This
module lays them out per task (one row per task with the model's score, each reference's score and the
verdict against it) and counts them, for the experiment report and ``benchmarks/compare_baselines.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from chadavit.evaluation.judging import LOWER_IS_BETTER, losses, score_column

REFERENCES = ("raw pixels", "its own random init", "the best baseline")  # the names judging.losses gives them
COLUMNS = ["task", "metric", "score", "raw_pixels", "random_init", "best_baseline", "best_baseline_score",
           *(f"vs {r}" for r in REFERENCES)]


def references(models: Sequence[str], model: str) -> list[str]:
    """The labels in a summary that are references for ``model``: every other label but the hybrids
    (``CellProfiler + <model>``), which are trained models too."""
    return [m for m in dict.fromkeys(models) if m != model and not str(m).startswith("CellProfiler + ")]


def _best(score: dict[str, float], baselines: Sequence[str], metric: str) -> str | None:
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    have = [b for b in baselines if b in score]
    return max(have, key=lambda b: sign * score[b]) if have else None


def _primary_scores(summary: pd.DataFrame, primaries: dict[str, list[str]]) -> list[tuple[str, str, dict]]:
    """``(task, primary metric, {model: score})`` per task, the score read from ``score_column``."""
    col = score_column(summary)
    metric_of = {t: ms[0] for t, ms in primaries.items() if ms}
    rows = summary[[metric_of.get(t) == m for t, m in zip(summary["task"], summary["metric"])]].dropna(subset=[col])
    by_task = {t: dict(zip(g["model"].astype(str), g[col].astype(float))) for t, g in rows.groupby("task")}
    return [(t, m, by_task.get(t, {})) for t, m in metric_of.items()]


def task_verdicts(summary: pd.DataFrame, primaries: dict[str, list[str]], model: str,
                  baselines: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per task with a primary metric that ``model`` was scored on: its score (median over seeds),
    the references' scores and, per reference, ``"worse"``, ``"not worse"`` or ``"n/a"`` (reference not run)."""
    baselines = references(summary["model"].astype(str), model) if baselines is None else list(baselines)
    lost = losses(summary, primaries, baselines)
    lost = lost[lost["model"] == model]
    rows = []
    for task, metric, score in _primary_scores(summary, primaries):
        if model not in score:
            continue
        best = _best(score, baselines, metric)
        refs = {"raw pixels": "raw_pixels", "its own random init": f"random init ({model})", "the best baseline": best}
        row = {"task": task, "metric": metric, "score": score[model], "raw_pixels": score.get("raw_pixels"),
               "random_init": score.get(f"random init ({model})"), "best_baseline": best,
               "best_baseline_score": score.get(best) if best else None}
        for what, ref in refs.items():
            worse = ((lost["task"] == task) & (lost["reference"] == what)).any()
            row[f"vs {what}"] = "n/a" if ref is None or ref not in score else "worse" if worse else "not worse"
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def tally(verdicts: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per reference: (tasks where the model is not worse, tasks where that reference was run)."""
    out = {}
    for what in REFERENCES:
        v = verdicts[f"vs {what}"]
        out[what] = (int((v == "not worse").sum()), int((v != "n/a").sum()))
    return out


def tally_line(name: str, verdicts: pd.DataFrame) -> str:
    """``"ChAda-ViT: not worse than raw pixels on 3 of 4 tasks, ..."`` (medians over seeds)."""
    parts = [f"than {what} on {k} of {n} tasks" for what, (k, n) in tally(verdicts).items() if n]
    return f"{name}: not worse " + ", ".join(parts) if parts else f"{name}: no task with a reference to compare"
