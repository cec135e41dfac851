"""Print a trained model's primary-metric gap to raw pixels, random init and hand-crafted features per task.

Reads the ``summary.csv`` that ``chadavit eval --out DIR`` writes (baselines are added by default):

    python benchmarks/compare_baselines.py runs/eval_real [MODEL_LABEL] [SUITE (default real)]

The last lines are the mean gaps (% metrics on 0-1 so they average with R^2): against the better of raw
pixels and random init (the issue-10 acceptance bar) and against the best baseline including hand-crafted.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

PCT = {"top1", "macro_f1", "nsc", "nscb"}


def main(out_dir: str, model: str | None = None, suite: str = "real") -> None:
    from chadavit.evaluation.suite import PRIMARY, load_suite

    prim = {t.name: list(t.params.get("primary") or PRIMARY.get(t.protocol) or []) for t in load_suite(suite).tasks}
    s = pd.read_csv(Path(out_dir) / "summary.csv")
    models = list(dict.fromkeys(s["model"]))
    random = [m for m in models if m.startswith("random init")]
    fixed = {"raw_pixels", "handcrafted"}
    trained = [m for m in models if m not in fixed and m not in random]
    model = model or trained[0]
    rows = []
    for task, g in s.groupby("task", sort=False):
        have = set(g["metric"])
        metric = next((m for m in prim.get(task, []) if m in have), None)
        if metric is None or (metric not in PCT and metric != "r2"):
            continue
        v = g[g["metric"] == metric].set_index("model")["mean"]
        scale = 100.0 if metric in PCT else 1.0
        ref = max(v.get("raw_pixels", float("-inf")), *(v.get(r, float("-inf")) for r in random))
        best = max(ref, v.get("handcrafted", float("-inf")))
        rows.append((task, metric, v.get(model), v.get("raw_pixels"), max((v.get(r) for r in random), default=None),
                     v.get("handcrafted"), (v.get(model) - ref) / scale, (v.get(model) - best) / scale))
    df = pd.DataFrame(rows, columns=["task", "metric", model[:20], "pixels", "random", "handcrafted",
                                     "gap_pix_rand", "gap_best"])
    pd.set_option("display.width", 200)
    print(df.round(3).to_string(index=False))
    print(f"mean gap vs max(pixels, random init): {df['gap_pix_rand'].mean():+.3f}  "
          f"(better on {(df['gap_pix_rand'] > 0).sum()} of {len(df)} tasks)")
    print(f"mean gap vs best baseline incl. hand-crafted: {df['gap_best'].mean():+.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
