"""Paper-style tables: rows are models, columns are tasks, cells are ``mean ± std`` over seeds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METRIC_LABELS = {"top1": "top-1 %", "macro_f1": "macro F1 %", "r2": "R²", "mse": "MSE", "mae": "MAE",
                 "pearson": "Pearson r", "nsc": "NSC %", "nscb": "NSCB %", "nsc_chance": "NSC chance %",
                 "nscb_chance": "NSCB chance %"}


def fmt(mean: float, std: float, metric: str) -> str:
    if pd.isna(mean):
        return "n/a"
    if metric.startswith("n_"):  # counts (e.g. MoA treatments): the same for every seed
        return f"{mean:.0f}" if not std else f"{mean:.1f} ± {std:.1f}"
    percent = ("top1", "macro_f1", "nsc", "nscb", "nsc_chance", "nscb_chance")
    digits = 1 if metric in percent or metric.startswith("top1@") else 3
    if metric == "mse":
        digits = 4
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def column_name(task: str, metric: str) -> str:
    return f"{task} ({METRIC_LABELS.get(metric, metric)})"


def wide_table(summary: pd.DataFrame, primaries: dict[str, list[str]] | None = None,
               numeric: bool = False) -> pd.DataFrame:
    """Models x ``task (metric)`` table; only each task's primary metrics when ``primaries`` is given."""
    rows = summary
    if primaries is not None:
        keep = {(t, m) for t, ms in primaries.items() for m in ms}
        mask = np.array([(t, m) in keep for t, m in zip(summary["task"], summary["metric"])], dtype=bool)
        rows = summary.loc[mask]
    cols = list(dict.fromkeys(column_name(t, m) for t, m in zip(rows["task"], rows["metric"])))
    models = list(dict.fromkeys(rows["model"]))
    table = pd.DataFrame(index=pd.Index(models, name="model"), columns=cols, dtype=object)
    for r in rows.itertuples(index=False):
        table.loc[r.model, column_name(r.task, r.metric)] = r.mean if numeric else fmt(r.mean, r.std, r.metric)
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    head = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + [":---:"] * len(table.columns)) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx)] + ["" if pd.isna(v) else str(v) for v in row]) + " |")
    return "\n".join(lines)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_tables(results: pd.DataFrame, summary: pd.DataFrame, primaries: dict[str, list[str]], meta: dict[str, Any],
                 out: str | os.PathLike[str]) -> Path:
    """Write ``results.md`` (main + full tables), ``summary.csv``, ``table.csv`` and ``results_per_seed.csv``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "results_per_seed.csv", results.to_csv(index=False))
    _atomic(out / "summary.csv", summary.to_csv(index=False))
    main = wide_table(summary, primaries)
    _atomic(out / "table.csv", main.to_csv())
    seeds = meta.get("seeds", [])
    md = [f"# Evaluation: suite `{meta.get('suite', '')}`", "",
          f"Mean ± sample std over {len(seeds)} seeds {seeds}; rows are models, columns are tasks "
          "(primary metric). Suite file: `" + str(meta.get("source", "")) + "`.", ""]
    if meta.get("models"):
        md += ["Models: " + ", ".join(f"`{label}` (`{spec}`)" for label, spec in meta["models"]), ""]
    md += ["## Main table", "", to_markdown(main) if len(main.columns) else "(no results)", ""]
    if meta.get("skipped"):
        md += ["Skipped (dataset unavailable): " + ", ".join(meta["skipped"]), ""]
    if meta.get("failures"):
        md += ["## Failures", "", ("These tasks raised; every other task ran. Rerunning the same command retries "
                                   "them and resumes the finished ones."), "", "| model | task | error |", "|---|---|---|"]
        md += [f"| {f['model']} | {f['task']} | {f['error'].replace('|', '/')} |" for f in meta["failures"]] + [""]
    if meta.get("datasets"):
        md += ["## Datasets", "", "| dataset | images | split | notes |", "|---|---:|---|---|"]
        md += [f"| {k} | {v['n']:,} | {v['split']} | {v.get('note', '')} |" for k, v in meta["datasets"].items()]
        md += [""]
    tasks = meta.get("tasks") or []
    if tasks:
        md += ["## Tasks", "", "| task | dataset | protocol | label | features | settings |",
               "|---|---|---|---|---|---|"]
        for t in tasks:
            settings = json.dumps(t.params, default=str) if t.params else ""
            if t.protocol == "knn":
                settings = f"k={t.params.get('k', 20)}, T={t.params.get('temperature', 0.07)}, cosine, exp(sim/T)"
            md.append(f"| {t.name} | {t.dataset} | {t.protocol} | {t.label or ''} | {t.features} | {settings} |")
        md.append("")
    full = wide_table(summary)
    if len(full.columns) > len(main.columns):
        md += ["## All metrics", "", to_markdown(full), ""]
    if meta.get("timings"):
        md += ["## Runtime", "", "| model | seconds |", "|---|---:|"]
        md += [f"| {k} | {v:.1f} |" for k, v in meta["timings"].items()]
        md += ["", f"Total: {meta.get('total_s', 0):.1f} s", ""]
    figs = sorted((out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    if figs:
        md += ["## Figures", ""] + [f"![{f.stem}](figures/{f.name})" for f in figs] + [""]
    _atomic(out / "results.md", "\n".join(md))
    return out / "results.md"
