"""Per-task medians over seeds of pretraining variants against raw pixels and each variant's own random init.

Reads the ``results_per_seed.csv`` of one ``chadavit eval --suite real`` folder per variant (baselines are
added by default) and prints one row per task: raw pixels, hand-crafted (CellProfiler), then per variant
``trained (random init)`` with ``+`` where the trained model beats both raw pixels and its own random init
(the issue-20 bar), and a count of such tasks. Scores are the primary metric, median over seeds.

    python benchmarks/recipe_table.py runs/s0_eval=base runs/s1_eval=koleo [--suite real]

``--kinds`` reads folders written by ``benchmarks/real_feature_kinds.py`` (``kinds.csv``: every distinct task
on the ``cls``, ``patch_mean`` and ``per_channel`` read-outs) and judges each read-out of the trained model
against the SAME read-out of its random init and against raw pixels (one vector for every read-out), then
counts the wins per read-out. It also prints the count on the suite's own 13 tasks (its nine ``cls`` tasks
and its four ``patch_mean`` tasks), which the same seeds and splits give without a second evaluation.

    python benchmarks/recipe_table.py --kinds runs/f1_kinds=init runs/f2_kinds=init_seed1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

KINDS = ("cls", "patch_mean", "per_channel")


def role(model: str) -> str:
    """What a result row is: ``pixels``, ``handcrafted``, ``random`` (a random-init twin), ``hybrid`` or ``trained``."""
    if model == "raw_pixels":
        return "pixels"
    if model in ("handcrafted", "cellprofiler") or model.startswith("CellProfiler ("):
        return "handcrafted"
    if model.startswith("random init"):
        return "random"
    if model.startswith("CellProfiler +"):
        return "hybrid"
    return "trained"


def medians(eval_dir: Path, suite: str) -> pd.DataFrame:
    """``task x role`` medians (roles: trained, pixels, random, handcrafted) of the primary metric."""
    from chadavit.evaluation.suite import PRIMARY, load_suite

    prim = {t.name: list(t.params.get("primary") or PRIMARY.get(t.protocol) or []) for t in load_suite(suite).tasks}
    d = pd.read_csv(eval_dir / "results_per_seed.csv")
    d["role"] = [role(m) for m in d["model"]]
    d = d[d["role"] != "hybrid"]
    rows = {}
    for task, g in d.groupby("task", sort=False):
        metric = next((m for m in prim.get(task, []) if m in set(g["metric"])), None)
        if metric is not None:
            rows[task] = g[g["metric"] == metric].groupby("role")["value"].median()
    return pd.DataFrame(rows).T


def kind_medians(kinds_csv: Path) -> dict[str, pd.DataFrame]:
    """Per read-out, ``task x role`` medians from a ``kinds.csv``; raw pixels and hand-crafted come from ``cls``."""
    wide = pd.read_csv(kinds_csv)
    wide["role"] = [role(m) for m in wide["model"]]
    wide = wide[wide["role"] != "hybrid"]
    out = {}
    for kind in KINDS:
        m = wide.pivot_table(index="task", columns="role", values=kind, sort=False)
        fixed = wide.pivot_table(index="task", columns="role", values="cls", sort=False)
        for r in ("pixels", "handcrafted"):
            if r in fixed:
                m[r] = fixed[r]
        out[kind] = m
    return out


def suite_view(per_kind: dict[str, pd.DataFrame], suite: str = "real") -> pd.DataFrame:
    """The suite's own tasks (their read-out as the suite YAML sets it) out of a kinds run's medians."""
    from chadavit.evaluation.suite import load_suite

    tasks = load_suite(suite).tasks
    first = {}
    for t in tasks:
        first.setdefault((t.dataset, t.label, t.protocol), t.name)
    rows = {}
    for t in tasks:
        source = first[(t.dataset, t.label, t.protocol)]
        m = per_kind[t.features]
        if source in m.index:
            rows[t.name] = m.loc[source]
    return pd.DataFrame(rows).T


def _column(m: pd.DataFrame) -> tuple[list[str], int]:
    beats = (m["trained"] > m["pixels"]) & (m["trained"] > m["random"])
    cells = [f"{t:.3f} ({r:.3f}){' +' if b else ''}" for t, r, b in zip(m["trained"], m["random"], beats)]
    return cells, int(beats.sum())


def _print(table: pd.DataFrame, wins: dict[str, str], what: str) -> None:
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 50)
    print(table.round(3).to_string())
    print(f"{what} beats raw pixels and its own random init (median over seeds):",
          ", ".join(f"{k} {v}" for k, v in wins.items()))


def _add(table: pd.DataFrame | None, m: pd.DataFrame, label: str, wins: dict[str, str]) -> pd.DataFrame:
    if table is None:
        table = m[[c for c in ("pixels", "handcrafted") if c in m]].copy()
    cells, n = _column(m.loc[table.index])
    table[label] = cells
    wins[label] = f"{n}/{len(table)}"
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evals", nargs="+", metavar="DIR[=LABEL]")
    ap.add_argument("--suite", default="real")
    ap.add_argument("--kinds", action="store_true", help="DIRs are benchmarks/real_feature_kinds.py outputs")
    args = ap.parse_args()
    items = [(Path(p), lab or Path(p).name) for p, _, lab in (i.partition("=") for i in args.evals)]
    if not args.kinds:
        table, wins = None, {}
        for path, label in items:
            table = _add(table, medians(path, args.suite), label, wins)
        _print(table, wins, "the model")
        return
    per = {label: kind_medians(path / "kinds.csv") for path, label in items}
    table, wins = None, {}
    for label, k in per.items():
        table = _add(table, suite_view(k, args.suite), label, wins)
    print(f"== the suite's {len(table)} tasks (cls, and patch_mean where the suite says)")
    _print(table, wins, "the model")
    for kind in KINDS:
        table, wins = None, {}
        for label, k in per.items():
            table = _add(table, k[kind], label, wins)
        print(f"\n== read-out {kind}: the model's {kind} vs its random init's {kind} and raw pixels")
        _print(table, wins, f"{kind}")


if __name__ == "__main__":
    main()
