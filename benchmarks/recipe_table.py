"""Per-task medians over seeds of pretraining variants against raw pixels and each variant's own random init.

Reads the ``results_per_seed.csv`` of one ``chadavit eval --suite real`` folder per variant (baselines are
added by default) and prints one row per task: raw pixels, hand-crafted, then per variant ``trained
(random init)`` with ``+`` where the trained model beats both raw pixels and its own random init
(the issue-20 bar), and a count of such tasks. Scores are the primary metric, median over seeds.

    python benchmarks/recipe_table.py runs/s0_eval=base runs/s1_eval=koleo [--suite real]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def medians(eval_dir: Path, suite: str) -> pd.DataFrame:
    """``task x role`` medians (roles: trained, pixels, random, handcrafted) of the primary metric."""
    from chadavit.evaluation.suite import PRIMARY, load_suite

    prim = {t.name: list(t.params.get("primary") or PRIMARY.get(t.protocol) or []) for t in load_suite(suite).tasks}
    d = pd.read_csv(eval_dir / "results_per_seed.csv")
    role = {"raw_pixels": "pixels", "handcrafted": "handcrafted"}
    d["role"] = [role.get(m, "random" if m.startswith("random init") else "trained") for m in d["model"]]
    rows = {}
    for task, g in d.groupby("task", sort=False):
        metric = next((m for m in prim.get(task, []) if m in set(g["metric"])), None)
        if metric is not None:
            rows[task] = g[g["metric"] == metric].groupby("role")["value"].median()
    return pd.DataFrame(rows).T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evals", nargs="+", metavar="DIR[=LABEL]")
    ap.add_argument("--suite", default="real")
    args = ap.parse_args()
    table, wins = None, {}
    for item in args.evals:
        path, _, label = item.partition("=")
        m = medians(Path(path), args.suite)
        label = label or Path(path).name
        if table is None:
            table = m[[c for c in ("pixels", "handcrafted") if c in m]].copy()
        beats = (m["trained"] > m["pixels"]) & (m["trained"] > m["random"])
        table[label] = [f"{t:.3f} ({r:.3f}){' +' if b else ''}" for t, r, b in zip(m["trained"], m["random"], beats)]
        wins[label] = f"{int(beats.sum())}/{len(m)}"
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 50)
    print(table.round(3).to_string())
    print("beats raw pixels and its own random init (median over seeds):",
          ", ".join(f"{k} {v}" for k, v in wins.items()))


if __name__ == "__main__":
    main()
