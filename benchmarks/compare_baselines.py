"""Print a trained model's score against raw pixels, its own random init and the best baseline, task by task.

Reads the ``summary.csv`` that ``chadavit eval --out DIR`` writes (baselines are added by default):

    python benchmarks/compare_baselines.py runs/eval_real [MODEL_LABEL] [SUITE (default real)]

Each task is scored on its primary metric by the median over seeds (``chadavit.evaluation.judging``; the mean
only for summaries written before medians were), and the model is "worse" or "not worse" than each reference
(MSE/MAE: lower is better). Then the counts of tasks, the tasks it loses, and, last, the mean of the per-task gaps
(% metrics on 0-1 so they average with R^2; tasks with other metrics left out of the mean): against the better of
raw pixels and its random init (the issue-10 bar) and against the best baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def gaps(v: pd.DataFrame) -> pd.DataFrame:
    """Per task: the model's gap to the better of raw pixels and its random init, and to the best baseline, on 0-1
    (positive: the model is better); NaN for metrics without a common scale (MSE, MAE, counts)."""
    from chadavit.evaluation.judging import LOWER_IS_BETTER, scale

    bounded = [m not in LOWER_IS_BETTER and not m.startswith("n_") for m in v["metric"]]
    div = np.array([scale(m) for m in v["metric"]], dtype=float)
    ref = np.fmax(v["raw_pixels"].astype(float), v["random_init"].astype(float))
    out = v[["task", "metric"]].copy()
    out["gap_pix_rand"] = np.where(bounded, (v["score"].astype(float) - ref) / div, np.nan)
    out["gap_best"] = np.where(bounded, (v["score"].astype(float) - v["best_baseline_score"].astype(float)) / div,
                               np.nan)
    return out


def main(out_dir: str, model: str | None = None, suite: str = "real") -> None:
    from chadavit.evaluation.judging import loss_lines, score_column
    from chadavit.evaluation.suite import PRIMARY, load_suite
    from chadavit.experiments.verdict import references, tally_line, task_verdicts

    prim = {t.name: list(t.params.get("primary") or PRIMARY.get(t.protocol) or []) for t in load_suite(suite).tasks}
    s = pd.read_csv(Path(out_dir) / "summary.csv")
    models = [str(m) for m in dict.fromkeys(s["model"])]
    refs_of_all = {"raw_pixels", "cellprofiler", "CellProfiler (cp_measure)", "handcrafted", "pixels"}
    trained = [m for m in models if m not in refs_of_all and not m.startswith(("random init", "CellProfiler + "))]
    model = model or trained[0]
    refs = [m for m in references(models, model) if m not in trained]
    v = task_verdicts(s, prim, model, refs)
    g = gaps(v)
    shown = v.drop(columns=["best_baseline_score"]).assign(
        best_baseline=[f"{b[:24]}" if isinstance(b, str) else "n/a" for b in v["best_baseline"]],
        gap_pix_rand=g["gap_pix_rand"], gap_best=g["gap_best"])
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    print(f"{model}: {score_column(s)} over seeds, primary metric per task")
    print(shown.round(3).to_string(index=False))
    print(tally_line(model, v))
    primaries = {t: ms for t, ms in prim.items() if t in set(v["task"])}
    for line in loss_lines(s[s["model"].isin([model, *refs])], primaries, refs):
        print(line)
    n = int(g["gap_pix_rand"].notna().sum())
    print(f"mean of the per-task gaps vs max(pixels, random init): {g['gap_pix_rand'].mean():+.3f}  "
          f"(better on {(g['gap_pix_rand'] > 0).sum()} of {n} tasks with a % or R^2 metric)")
    print(f"mean of the per-task gaps vs the best baseline: {g['gap_best'].mean():+.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
