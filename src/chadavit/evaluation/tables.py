"""Paper-style tables: rows are models, columns are tasks, cells are ``median ± std`` over seeds (just the value
for one seed; † marks an outlier seed); the gap of each model to the best baseline; where each model loses; a
narrow terminal summary."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chadavit.atomic import write_text_atomic
from chadavit.evaluation.judging import loss_lines, outlier_notes, score_column, scrub_paths

METRIC_LABELS = {"top1": "top-1 %", "macro_f1": "macro F1 %", "r2": "R²", "mse": "MSE", "mae": "MAE",
                 "pearson": "Pearson r", "nsc": "NSC %", "nscb": "NSCB %", "nsc_chance": "NSC chance %",
                 "nscb_chance": "NSCB chance %"}


def _digits(metric: str) -> int:
    if metric == "mse":
        return 4
    percent = ("top1", "macro_f1", "nsc", "nscb", "nsc_chance", "nscb_chance")
    return 1 if metric in percent or metric.startswith("top1@") else 3


def fmt(mean: float, std: float, metric: str, n_seeds: int = 2) -> str:
    """``mean ± std``; just ``mean`` for one seed, whose spread is unknown, not zero."""
    if pd.isna(mean):
        return "n/a"
    if metric.startswith("n_"):  # counts (e.g. MoA treatments): the same for every seed
        return f"{mean:.0f}" if n_seeds < 2 or not std or pd.isna(std) else f"{mean:.1f} ± {std:.1f}"
    digits = _digits(metric)
    if n_seeds < 2 or pd.isna(std):
        return f"{mean:.{digits}f}"
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
    col = score_column(rows)  # the median over seeds where the summary has it
    for r in rows.to_dict("records"):
        n = int(r.get("n_seeds", 2))
        flag = " †" if str(r.get("outliers") or "") not in ("", "nan") else ""
        table.loc[r["model"], column_name(r["task"], r["metric"])] = r[col] if numeric else \
            fmt(r[col], r["std"], r["metric"], n) + flag
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    head = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + [":---:"] * len(table.columns)) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx)] + ["" if pd.isna(v) else str(v) for v in row]) + " |")
    return "\n".join(lines)


def portable(spec: str) -> str:
    """A path (or model spec) without this machine's folders: relative to the working folder, the package's own
    files as ``chadavit/...``, anything else by its file name (``official:/x/y.ckpt`` -> ``official:y.ckpt``)."""
    prefix, _, rest = spec.partition(":") if re.match(r"^[a-z]+:/", spec) else ("", "", spec)
    path, sep, opts = rest.partition(",")
    p = Path(path)
    if not p.is_absolute():
        return spec
    package = Path(__file__).resolve().parents[1]
    for base, label in ((package, "chadavit/"), (Path.cwd().resolve(), "")):
        try:
            shown = label + p.resolve().relative_to(base).as_posix()
            break
        except ValueError:
            continue
    else:
        shown = p.name
    return f"{prefix}{':' if prefix else ''}{shown}{sep}{opts}"


def machine_and_load() -> str:
    """Where a time was measured: CPU count and model, and how busy the machine was (load averages)."""
    import platform

    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return f"{os.cpu_count()} CPU(s) {platform.processor() or platform.machine()}, load average {load} (1/5/15 min)"


def write_tables(results: pd.DataFrame, summary: pd.DataFrame, primaries: dict[str, list[str]], meta: dict[str, Any],
                 out: str | os.PathLike[str]) -> Path:
    """Write ``results.md`` (main + full tables), ``summary.csv``, ``table.csv`` and ``results_per_seed.csv``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results_per_seed.csv", results.to_csv(index=False))
    write_text_atomic(out / "summary.csv", summary.to_csv(index=False))
    main = wide_table(summary, primaries)
    write_text_atomic(out / "table.csv", main.to_csv())
    seeds = meta.get("seeds", [])
    spread = f"Median ± sample std over {len(seeds)} seeds {seeds}" if len(seeds) > 1 else \
        f"One seed {seeds} (no spread is shown: one run cannot estimate it)"
    md = [f"# Evaluation: suite `{meta.get('suite', '')}`", "",
          f"{spread}; rows are models, columns are tasks "
          "(primary metric). Suite file: `" + portable(str(meta.get("source", ""))) + "`.", ""]
    if meta.get("models"):
        md += ["Models: " + ", ".join(f"`{label}` (`{portable(spec)}`)" for label, spec in meta["models"]), ""]
    md += ["## Main table", "", to_markdown(main) if len(main.columns) else "(no results)", ""]
    notes = outlier_notes(summary, primaries)
    if notes:
        md += ["† Outlier seeds (far from the other seeds; the median above is not moved by them):", ""]
        md += notes + [""]
    if meta.get("unseen_channels"):
        md += ["Channels never seen in training:", ""] + list(meta["unseen_channels"]) + [""]
    md += baseline_section(summary, primaries, meta.get("baselines") or [])
    if meta.get("skipped"):
        md += ["Skipped (dataset unavailable): " + ", ".join(meta["skipped"]), ""]
    if meta.get("failures"):
        md += ["## Failures", "", ("These tasks raised; every other task ran. Rerunning the same command retries "
                                   "them and resumes the finished ones."), "",
               "| model | task | error |", "|---|---|---|"]
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
                settings = (f"k={t.params.get('k', 20)}, T={t.params.get('temperature', 0.07)}, cosine, exp(sim/T); "
                            "measurements in physical units standardised on the training split first")
            md.append(f"| {t.name} | {t.dataset} | {t.protocol} | {t.label or ''} | {t.features} | {settings} |")
        md.append("")
    md += moa_counts_section(summary)
    full = wide_table(summary)
    if len(full.columns) > len(main.columns):
        md += ["## All metrics", "", to_markdown(full), ""]
    if meta.get("timings"):
        md += ["## Runtime", "", "| model | seconds |", "|---|---:|"]
        md += [f"| {k} | {v:.1f} |" for k, v in meta["timings"].items()]
        md += ["", f"Total: {meta.get('total_s', 0):.1f} s on {machine_and_load()}", ""]
    figs = sorted((out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    if figs:
        md += ["## Figures", ""] + [f"![{f.stem}](figures/{f.name})" for f in figs] + [""]
    write_text_atomic(out / "results.md", scrub_paths("\n".join(md)))
    return out / "results.md"


def moa_counts_section(summary: pd.DataFrame) -> list[str]:
    """Treatments and scored queries of each MoA task (NSC and NSCB), with the NSCB rule in one sentence."""
    counts = summary[summary["metric"].astype(str).str.startswith(("n_treatments_", "n_queries_", "n_moas_"))]
    if counts.empty:
        return []
    md = ["## MoA protocol counts", "",
          "NSCB leaves out MoAs whose treatments all lie in one batch; a treatment whose batches overlap those of "
          "every other compound's treatment has no admissible neighbour and is not a query (on BBBC021: taxol "
          "0.3 uM, the positive control of every week: 92 treatments, 91 queries). Rule of Ando et al. 2017, "
          "bioRxiv 161422 (not-same-compound-or-batch), applied to the set of batches of each treatment.", "",
          "| task | NSC treatments | NSC queries | NSCB treatments | NSCB MoAs | NSCB queries |",
          "|---|---:|---:|---:|---:|---:|"]
    for task, g in counts.groupby("task", sort=False):
        v = g.groupby("metric")["mean"].first()
        cell = [f"{v[k]:.0f}" if k in v else "" for k in ("n_treatments_nsc", "n_queries_nsc", "n_treatments_nscb",
                                                         "n_moas_nscb", "n_queries_nscb")]
        md.append(f"| {task} | " + " | ".join(cell) + " |")
    return md + [""]


# ---------------------------------------------------------------------------------------------- baselines, terminal
def baseline_section(summary: pd.DataFrame, primaries: dict[str, list[str]], baselines: list[str]) -> list[str]:
    """Markdown lines: the baselines, each model's gap to the best baseline per task, and one verdict per model."""
    from chadavit.evaluation.baselines import gap_table, mean_scores, verdicts

    if not baselines:
        return []
    md = ["## Against the best baseline", "",
          "Baselines (no training): " + ", ".join(f"`{b}`" for b in baselines) + ". Gap = model minus the best "
          "baseline on the task's primary metric (positive: the model is better; MSE/MAE sign-flipped); "
          "the mean gap puts % metrics on 0-1 so they average with R².", ""]
    gaps = gap_table(summary, primaries, baselines)
    if gaps.empty:
        return md + ["(no trained model to compare)", ""]
    tasks = list(dict.fromkeys(gaps["task"]))
    best = gaps.drop_duplicates("task").set_index("task")
    md += ["| model | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    md.append("| *best baseline* | " + " | ".join(
        f"{best.loc[t, 'best_baseline']} {best.loc[t, 'baseline_score']:.{_digits(best.loc[t, 'metric'])}f}"
        for t in tasks) + " |")
    for model, g in gaps.groupby("model", sort=False):
        by = g.set_index("task")
        md.append(f"| {model} | " + " | ".join(
            f"{by.loc[t, 'gap']:+.{_digits(by.loc[t, 'metric'])}f}" if t in by.index else "" for t in tasks) + " |")
    md += ["", "Verdict:", ""] + [f"- {v}" for v in verdicts(gaps).values()] + [""]
    md += ["Where each model loses, task by task (median over seeds):", ""] + \
        loss_lines(summary, primaries, baselines) + [""]
    means = mean_scores(summary, primaries)
    if means:
        md += ["Mean over the tasks (R², % metrics as fractions; * = baseline): " + ", ".join(
            f"{'*' if m in baselines else ''}{m} {v:.3f}" for m, v in means.items()), ""]
    return md


def terminal_summary(summary: pd.DataFrame, primaries: dict[str, list[str]] | None = None,
                     baselines: list[str] | None = None, width: int = 100) -> str:
    """A summary at most ``width`` columns wide: task keys T1..Tn with a legend, column blocks that fit, and
    one verdict line per model (the full table is in results.md)."""
    import textwrap

    from chadavit.evaluation.baselines import gap_table, mean_scores, verdicts

    table = wide_table(summary, primaries, numeric=True)
    if table.empty or not len(table.columns):
        return "(no results)"
    metrics = {column_name(t, m): m for t, m in zip(summary["task"], summary["metric"])}
    n_seeds = int(summary["n_seeds"].max()) if "n_seeds" in summary and len(summary) else 1
    base = set(baselines or [])
    names = [("* " if m in base else "") + str(m) for m in table.index]
    name_w = min(40, max(len(n) for n in names))
    cells = {c: [("n/a" if pd.isna(v) else f"{float(v):.{_digits(metrics.get(c, ''))}f}") for v in table[c]]
             for c in table.columns}
    keys = {c: f"T{i + 1}" for i, c in enumerate(table.columns)}
    col_w = {c: max(len(keys[c]), *(len(x) for x in cells[c])) for c in table.columns}
    stat = "median" if score_column(summary) == "median" else "mean"
    lines = [f"{stat} over {n_seeds} seed{'s' if n_seeds > 1 else ''}"
             + ("; * = baseline (no training)" if base else "")]
    cols = list(table.columns)
    while cols:
        block, used = [], name_w
        while cols and (not block or used + 2 + col_w[cols[0]] <= width):
            used += 2 + col_w[cols[0]]
            block.append(cols.pop(0))
        lines.append(" " * name_w + "".join(f"  {keys[c]:>{col_w[c]}}" for c in block))
        for i, n in enumerate(names):
            lines.append(f"{n[:name_w]:<{name_w}}" + "".join(f"  {cells[c][i]:>{col_w[c]}}" for c in block))
    for c in table.columns:
        lines += textwrap.wrap(f"{keys[c]} = {c}", width, subsequent_indent="     ")
    if base and primaries:
        means = mean_scores(summary, primaries)
        lines += textwrap.wrap("mean over tasks (R², % as fractions): " + ", ".join(
            f"{'* ' if m in base else ''}{m} {v:.3f}" for m, v in means.items()), width, subsequent_indent="    ")
        for v in verdicts(gap_table(summary, primaries, list(base))).values():
            lines += textwrap.wrap(v, width, subsequent_indent="    ")
        for v in loss_lines(summary, primaries, list(base), bullet=""):
            lines += textwrap.wrap(v, width, subsequent_indent="    ")
    return "\n".join(lines)
