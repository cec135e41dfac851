"""Per task, the median over seeds of cp_measure's CellProfiler features against the old hand-written statistics.

    chadavit eval --suite real --model handcrafted --model cellprofiler --no-baselines --seeds 0,1,2,3,4 --out DIR
    python benchmarks/compare_cellprofiler.py DIR [A_LABEL] [B_LABEL]

Prints one row per task (primary metric; % metrics and R² as given; MSE/MAE sign-flipped so that a positive
difference always means B is better), with ``seeds_b_ge_a``: on how many seeds B equals or beats A on the same
split (paired: a loss on every seed is a consistent loss, a loss on 2 of 5 is within the splits' noise). Then the
number of tasks B equals or beats A on, and both suite means (% metrics as fractions). Default A = handcrafted,
B = "CellProfiler (cp_measure)". Tasks on the same crops and target (the patch-mean copies of a CLS task,
``repeat``) are counted once in the wins.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

PCT = {"top1", "macro_f1", "nsc", "nscb"}
LOWER = {"mse", "mae"}


def main(out_dir: str, a: str = "handcrafted", b: str = "CellProfiler (cp_measure)", suite: str = "real") -> None:
    from chadavit.evaluation.suite import PRIMARY, load_suite

    tasks = load_suite(suite).tasks
    prim = {t.name: list(t.params.get("primary") or PRIMARY.get(t.protocol) or []) for t in tasks}
    key = {t.name: (t.dataset, t.label) for t in tasks}
    s = pd.read_csv(Path(out_dir) / "results_per_seed.csv")
    rows, seen = [], set()
    for task, g in s.groupby("task", sort=False):
        metric = next((m for m in prim.get(task, []) if m in set(g["metric"])), None)
        if metric is None:
            continue
        repeat = key.get(task) in seen  # a patch-mean copy: the same vector for these untrained encoders
        seen.add(key.get(task))
        scores = g[g["metric"] == metric]
        med = scores.groupby("model")["value"].median()
        if a not in med or b not in med:
            continue
        sign = -1.0 if metric in LOWER else 1.0
        paired = scores.pivot_table(index="seed", columns="model", values="value")[[a, b]].dropna()
        seeds_b_ge_a = int((sign * (paired[b] - paired[a]) >= 0).sum())
        scale = 100.0 if metric in PCT else 1.0
        rows.append({"task": task, "repeat": repeat, "metric": metric, "n_seeds": int(g["seed"].nunique()),
                     "seeds_b_ge_a": seeds_b_ge_a, a: med[a], b: med[b], "diff": sign * (med[b] - med[a]),
                     "unit_a": sign * med[a] / scale, "unit_b": sign * med[b] / scale})
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(df.drop(columns=["unit_a", "unit_b"]).round(3).to_string(index=False))
    uniq = df[~df["repeat"]]
    wins = int((uniq["diff"] >= 0).sum())
    print(f"{b} equals or beats {a} on {wins} of {len(uniq)} distinct tasks (medians over seeds)")
    print(f"suite mean over all {len(df)} tasks as the report counts them (% as fractions): {a} "
          f"{df['unit_a'].mean():.3f}, {b} {df['unit_b'].mean():.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
