"""CLS vs mean patch vs per-channel read-outs on every `real` task: medians over seeds, task by task.

    python benchmarks/real_feature_kinds.py OUT_DIR MODEL_SPEC [MODEL_SPEC ...]

Each distinct (dataset, label) task of the `real` suite is run once per feature kind (``cls``, ``patch_mean``,
``per_channel``), for the models given plus the baselines `run_suite` adds (raw pixels, hand-crafted features,
the random init of each trained model). Raw pixels and hand-crafted features give the same vector for every
kind, so they are run on ``cls`` only. Prints one table per task: rows models, columns kinds, the median over
the seeds of the primary metric (R², or macro F1 / top-1 % for the label-based tasks), then each model's count
of tasks where a kind is best. ``OUT_DIR/kinds.csv`` holds the same numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

KINDS = ("cls", "patch_mean", "per_channel")


def kinds_suite():  # noqa: ANN201
    from chadavit.evaluation.suite import load_suite

    suite = load_suite("real")
    seen, tasks = set(), []
    for t in suite.tasks:
        key = (t.dataset, t.label, t.protocol)
        if key in seen:
            continue
        seen.add(key)
        for kind in KINDS:
            tasks.append(type(t)(name=f"{t.name} [{kind}]", dataset=t.dataset, protocol=t.protocol, label=t.label,
                                 features=kind, params=dict(t.params)))
    suite.tasks = tasks
    suite.figures = {}
    return suite


def table(out: Path) -> pd.DataFrame:
    from chadavit.evaluation.suite import PRIMARY

    per_seed = pd.read_csv(out / "results_per_seed.csv")
    suite = kinds_suite()
    prim = {t.name: (t.params.get("primary") or PRIMARY[t.protocol])[0] for t in suite.tasks}
    per_seed = per_seed[[prim.get(t) == m for t, m in zip(per_seed["task"], per_seed["metric"])]]
    med = per_seed.groupby(["model", "task"], sort=False)["value"].median().reset_index()
    med["kind"] = med["task"].str.extract(r"\[(\w+)\]$")[0]
    med["task"] = med["task"].str.replace(r" \[\w+\]$", "", regex=True)
    return med.pivot_table(index=["task", "model"], columns="kind", values="value", sort=False)[list(KINDS)]


def main(out_dir: str, *specs: str) -> None:
    from chadavit.evaluation import run_suite

    out = Path(out_dir)
    run_suite(kinds_suite(), list(specs), out, figures=False, progress=False, skip_missing=True)
    wide = table(out)
    fixed = wide.index.get_level_values("model").isin(["raw_pixels", "handcrafted"])
    wide.loc[fixed, ["patch_mean", "per_channel"]] = float("nan")  # one vector for every kind: shown once
    wide.to_csv(out / "kinds.csv")
    pd.set_option("display.width", 200)
    print(wide.round(3).to_string())
    learned = wide[~fixed].dropna(how="all")
    best = learned.idxmax(axis=1).groupby(level="model").value_counts().unstack(fill_value=0)
    print("\ntasks where each kind is the model's best read-out:\n" + best.to_string())


if __name__ == "__main__":
    main(*sys.argv[1:])
