"""Gathering finished runs into the paper's layouts: Table 3, CLS against all-token, and the scaling plot.

Reads ``OUT/runs/*/metrics.json`` only (never re-runs anything), so a report can be made while an array job
is still running: unfinished runs are listed as missing. Writes Markdown, CSV and PNG (matplotlib Agg).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chadavit.atomic import write_atomic, write_text_atomic
from chadavit.experiments.runner import METRICS
from chadavit.experiments.spec import Experiment, RunSpec
from chadavit.experiments.verdict import COLUMNS, references, tally_line, task_verdicts


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_fig(fig: Any, path: Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100), suffix=".png")


def collect(exp: Experiment, results: str | os.PathLike[str] | None = None) -> tuple[dict[str, dict], list[str]]:
    """``{run name: metrics}`` for the finished runs, and the names of the unfinished ones (file order)."""
    found, missing = {}, []
    for run in exp.runs:
        p = exp.run_dir(run, results) / METRICS
        if p.is_file():
            found[run.name] = json.loads(p.read_text())
        else:
            missing.append(run.name)
    return found, missing


def long_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per (run, scored model, task, metric): run, label, family, model, parameters, embed_dim, ``scored``
    (the run's own model, or a reference its suite ran beside it: raw pixels, CellProfiler, its random init),
    task, metric, median (over seeds: the task's score), mean, std, n_seeds."""
    rows = []
    for name, m in metrics.items():
        for r in m["eval"]:
            rows.append({"run": name, "label": m["label"], "family": m["family"], "model": m["model"],
                         "parameters": m["parameters"], "embed_dim": m["embed_dim"], "scored": r["model"],
                         "task": r["task"], "metric": r["metric"], "median": r.get("median", r["mean"]),
                         "mean": r["mean"], "std": r["std"], "n_seeds": r["n_seeds"]})
    return pd.DataFrame(rows, columns=["run", "label", "family", "model", "parameters", "embed_dim", "scored", "task",
                                       "metric", "median", "mean", "std", "n_seeds"])


def _value(df: pd.DataFrame, run: RunSpec, task: str, metric: str) -> tuple[float, float, float]:
    """``(median, mean, std)`` over seeds of the run's own model on ``task`` (NaN when not scored)."""
    s = df[(df["run"] == run.name) & (df["scored"] == run.label) & (df["task"] == task) & (df["metric"] == metric)]
    if not len(s):
        return float("nan"), float("nan"), float("nan")
    return float(s["median"].iloc[0]), float(s["mean"].iloc[0]), float(s["std"].iloc[0])


def _fmt(median: float, std: float, metric: str) -> str:
    """The median over seeds, then the sample std as the spread (``fmt``'s ``x ± s``)."""
    from chadavit.evaluation.tables import fmt

    return fmt(median, std, metric)


def _md(table: pd.DataFrame) -> str:
    from chadavit.evaluation.tables import to_markdown

    return to_markdown(table)


def _runs(exp: Experiment, cfg: dict[str, Any], metrics: dict[str, dict]) -> list[RunSpec]:
    names = cfg.get("runs") or [r.name for r in exp.runs]
    return [exp.get(n) for n in names if n in metrics]


def table3(exp: Experiment, df: pd.DataFrame, metrics: dict[str, dict], cfg: dict[str, Any], out: Path) -> str:
    """Rows runs, columns (task, metric) as configured; ``table3.md`` / ``table3.csv`` (numbers as mean and std)."""
    cols = cfg.get("columns") or [{"task": t} for t in dict.fromkeys(df["task"])]
    runs = _runs(exp, cfg, metrics)
    heads = [c.get("header") or f"{c['task']} ({c.get('metric', 'top1')})" for c in cols]
    shown = pd.DataFrame(index=pd.Index([r.label for r in runs], name="model"), columns=heads, dtype=object)
    csv_rows = []
    for r in runs:
        row = {"run": r.name, "label": r.label, "family": r.family, "parameters": metrics[r.name]["parameters"]}
        for c, h in zip(cols, heads):
            metric = c.get("metric", "top1")
            median, mean, std = _value(df, r, c["task"], metric)
            shown.loc[r.label, h] = _fmt(median, std, metric)
            row[f"{h} median"], row[f"{h} mean"], row[f"{h} std"] = median, mean, std
        csv_rows.append(row)
    write_text_atomic(out / "table3.csv", pd.DataFrame(csv_rows).to_csv(index=False))
    title = cfg.get("title", "Table 3")
    md = f"## {title}\n\n{_md(shown)}\n"
    if cfg.get("note"):
        md += f"\n{cfg['note']}\n"
    write_text_atomic(out / "table3.md", md)
    return md


def cls_vs_all(exp: Experiment, df: pd.DataFrame, metrics: dict[str, dict], cfg: dict[str, Any], out: Path) -> str:
    """For each (CLS task, all-token task) pair: every run's score with both features (Figure 14, left)."""
    metric = cfg.get("metric", "top1")
    pairs = cfg.get("pairs") or []
    runs = _runs(exp, cfg, metrics)
    rows = []
    for pr in pairs:
        for r in runs:
            mc, _, sc = _value(df, r, pr["cls"], metric)
            ma, _, sa = _value(df, r, pr["all_tokens"], metric)
            rows.append({"pair": pr.get("title", pr["cls"]), "run": r.name, "label": r.label, "cls_median": mc,
                         "cls_std": sc, "all_tokens_median": ma, "all_tokens_std": sa, "gain": ma - mc})
    table = pd.DataFrame(rows, columns=["pair", "run", "label", "cls_median", "cls_std", "all_tokens_median",
                                        "all_tokens_std", "gain"])
    write_text_atomic(out / "cls_vs_all_tokens.csv", table.to_csv(index=False))
    shown = pd.DataFrame(
        {"task": table["pair"], "model": table["label"],
         "CLS": [_fmt(a, b, metric) for a, b in zip(table["cls_median"], table["cls_std"])],
         "all tokens": [_fmt(a, b, metric) for a, b in zip(table["all_tokens_median"], table["all_tokens_std"])],
         "all − CLS": [f"{g:+.1f}" if np.isfinite(g) else "n/a" for g in table["gain"]]}).set_index("task")
    title = cfg.get("title", "CLS token against all tokens (Figure 14, left)")
    md = f"## {title}\n\n{_md(shown)}\n\n![CLS vs all tokens](cls_vs_all_tokens.png)\n"
    write_text_atomic(out / "cls_vs_all_tokens.md", md)
    if len(table):
        plt = _plt()
        labels = [r.label for r in runs]
        fig, axes = plt.subplots(1, len(pairs), figsize=(1.5 + 1.5 * len(labels) * len(pairs), 3.4), squeeze=False)
        for ax, pr in zip(axes[0], pairs):
            t = table[table["pair"] == pr.get("title", pr["cls"])]
            x = np.arange(len(t))
            ax.bar(x - 0.2, t["cls_median"], 0.4, yerr=t["cls_std"], capsize=2, label="CLS")
            ax.bar(x + 0.2, t["all_tokens_median"], 0.4, yerr=t["all_tokens_std"], capsize=2, label="all tokens")
            ax.set_xticks(x, [str(lab)[:22] for lab in t["label"]], rotation=30, ha="right", fontsize=7)
            ax.set_title(pr.get("title", pr["cls"]), fontsize=9)
            ax.set_ylabel(metric)
            ax.legend(fontsize=7)
        fig.tight_layout()
        _save_fig(fig, out / "cls_vs_all_tokens.png")
        plt.close(fig)
    return md


def scaling(exp: Experiment, df: pd.DataFrame, metrics: dict[str, dict], cfg: dict[str, Any], out: Path) -> str:
    """Score against parameter count and against embedding size, one line per family (Figure 14, right)."""
    metric = cfg.get("metric", "top1")
    tasks = cfg.get("tasks") or list(dict.fromkeys(df["task"]))[:1]
    runs = sorted(_runs(exp, cfg, metrics), key=lambda r: (r.family, metrics[r.name]["parameters"]))
    rows = []
    for r in runs:
        m = metrics[r.name]
        for t in tasks:
            median, mean, std = _value(df, r, t, metric)
            rows.append({"family": r.family, "run": r.name, "label": r.label, "parameters": m["parameters"],
                         "embed_dim": m["embed_dim"], "depth": m.get("depth"), "task": t, "median": median,
                         "mean": mean, "std": std})
    table = pd.DataFrame(rows, columns=["family", "run", "label", "parameters", "embed_dim", "depth", "task",
                                        "median", "mean", "std"])
    write_text_atomic(out / "scaling.csv", table.to_csv(index=False))
    shown = table.assign(parameters=table["parameters"].map(lambda v: f"{v:,}"),
                         score=[_fmt(a, b, metric) for a, b in zip(table["median"], table["std"])])
    shown = shown[["family", "label", "parameters", "embed_dim", "depth", "task", "score"]].set_index("family")
    title = cfg.get("title", "Scaling: score against parameters and embedding size (Figure 14, right)")
    md = f"## {title}\n\n{_md(shown)}\n\n![scaling](scaling.png)\n"
    write_text_atomic(out / "scaling.md", md)
    if len(table):
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for (fam, task), g in table.groupby(["family", "task"], sort=False):
            lab = f"{fam} · {task}" if len(tasks) > 1 else str(fam)
            g_p = g.sort_values("parameters")
            axes[0].errorbar(g_p["parameters"], g_p["median"], yerr=g_p["std"], marker="o", capsize=2, label=lab)
            g_d = g.sort_values("embed_dim")
            axes[1].errorbar(g_d["embed_dim"], g_d["median"], yerr=g_d["std"], marker="o", capsize=2, label=lab)
        from matplotlib.ticker import NullFormatter

        axes[0].set_xscale("log")
        ticks = sorted(set(table["parameters"]))
        axes[0].set_xticks(ticks, [f"{v / 1e6:.2g}M" if v >= 1e6 else f"{v / 1e3:.3g}k" for v in ticks])
        axes[0].xaxis.set_minor_formatter(NullFormatter())
        axes[0].set_xlabel("backbone parameters")
        axes[1].set_xscale("log", base=2)
        dims = sorted(set(table["embed_dim"]))
        axes[1].set_xticks(dims, [str(d) for d in dims])
        axes[1].xaxis.set_minor_formatter(NullFormatter())
        axes[1].set_xlabel("embedding size D")
        for ax in axes:
            ax.set_ylabel(f"{metric}" + (f" ({tasks[0]})" if len(tasks) == 1 else ""))
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        _save_fig(fig, out / "scaling.png")
        plt.close(fig)
    return md


def task_by_task(exp: Experiment, metrics: dict[str, dict], out: Path) -> str:
    """Every finished run against the references its suite ran beside it (raw pixels, its own random init, the
    best baseline), task by task on the primary metric's median over seeds; ``task_by_task.md`` / ``.csv``."""
    from chadavit.evaluation.judging import loss_lines

    tables, lines = [], []
    for run in (r for r in exp.runs if r.name in metrics):
        m = metrics[run.name]
        summary = pd.DataFrame(m["eval"])
        if summary.empty:
            continue
        v = task_verdicts(summary, m.get("primary") or {}, run.label)
        tables.append(v.assign(run=run.name, label=run.label))
        lines.append(f"- {tally_line(run.label, v)}")
        primaries = {t: ms for t, ms in (m.get("primary") or {}).items() if t in set(v["task"])}
        refs = references(summary["model"].astype(str), run.label)
        own = summary[summary["model"].isin([run.label, *refs])]
        lines += [f"  {ln}" for ln in loss_lines(own, primaries, refs)]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["run", "label", *COLUMNS])
    table = table[["run", "label", *COLUMNS]]
    write_text_atomic(out / "task_by_task.csv", table.to_csv(index=False))
    shown = table.assign(
        score=[_num(x) for x in table["score"]], raw_pixels=[_num(x) for x in table["raw_pixels"]],
        random_init=[_num(x) for x in table["random_init"]],
        best_baseline=[f"{b} {_num(x)}" if isinstance(b, str) else "n/a"
                       for b, x in zip(table["best_baseline"], table["best_baseline_score"])],
    ).drop(columns=["run", "best_baseline_score"]).set_index("label")
    md = ("## Task by task (medians over seeds, primary metric)\n\n" + "\n".join(lines) + "\n\n" + _md(shown)
          + "\n")
    write_text_atomic(out / "task_by_task.md", md)
    return md


def _num(x: Any) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{float(x):.3g}"


def _provenance_md(metrics: dict[str, dict]) -> str:
    lines = ["## Runs", "", "| run | model | parameters | D | pretrain steps | pretrain s | eval s | commit | torch | "
             "hardware |", "|---|---|---:|---:|---:|---:|---:|---|---|---|"]
    for name, m in metrics.items():
        p = m.get("provenance", {})
        hw = p.get("hardware", {})
        where = hw.get("gpu") or f"{hw.get('cpus_available', '?')} CPU cores"
        git = p.get("git", {})
        commit = str(git.get("commit", "unknown"))[:10] + ("+dirty" if git.get("dirty") else "")
        lines.append(f"| {name} | {m['model']} | {m['parameters']:,} | {m['embed_dim']} | "
                     f"{m['pretrain'].get('steps')} | "
                     f"{m['wall_s']['pretrain']} | {m['wall_s']['eval']} | {commit} | "
                     f"{p.get('libraries', {}).get('torch', '?')} | {where} |")
    total = sum(m["wall_s"]["total"] for m in metrics.values())
    lines += ["", f"Total run time: {total:.0f} s ({total / 60:.1f} min)", ""]
    return "\n".join(lines)


def make_report(exp: Experiment, out: str | os.PathLike[str], results: str | os.PathLike[str] | None = None,
                say: Any = print) -> Path:
    """Write ``report.md`` plus each layout's ``.md``/``.csv``/``.png`` and ``all_results.csv`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics, missing = collect(exp, results)
    df = long_table(metrics)
    write_text_atomic(out / "all_results.csv", df.to_csv(index=False))
    parts = [f"# Experiment `{exp.name}`", ""]
    if exp.description:
        parts += [exp.description.strip(), ""]
    parts += [f"Experiment file: `{exp.source}`. Results: `{Path(results or exp.out)}`. Scores are the median over "
              "the evaluation seeds (the task's score, as in `chadavit eval`) ± the sample std; `all_results.csv` "
              "also has the means.", ""]
    if missing:
        parts += [f"**Not finished yet ({len(missing)}):** " + ", ".join(missing), ""]
        say(f"report: {len(missing)} run(s) not finished: {', '.join(missing)}")
    if metrics:
        sections = exp.report or {"table3": {}}
        for key, fn in (("table3", table3), ("cls_vs_all", cls_vs_all), ("scaling", scaling)):
            if key in sections:
                parts += [fn(exp, df, metrics, sections[key] or {}, out), ""]
        parts += [task_by_task(exp, metrics, out), ""]
        parts.append(_provenance_md(metrics))
    from chadavit.evaluation.judging import scrub_paths

    write_text_atomic(out / "report.md", scrub_paths("\n".join(parts)))  # no absolute paths of this machine
    say(f"wrote {out / 'report.md'} ({len(metrics)} finished run(s))")
    return out / "report.md"
