"""The demo: the default pretraining preset end to end, then the evaluation suites and a plain verdict.

``chadavit demo`` (``cli/demo.py``) parses its options and calls these: :func:`run_demo` pretrains,
:func:`format_summary` says what happened, :func:`run_demo_evaluation` runs the suites and
:func:`demo_verdict` says, line by line, where the pretrained model beats or loses to the baselines.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def run_demo(out_dir: str | Path = "runs/demo", overrides: list[str] | tuple[str, ...] = (),
             progress: bool = True) -> dict[str, Any]:
    """Pretrain with the ``demo`` preset into ``out_dir/pretrain``; returns the run summary.

    Keys include ``knn_trained``, ``knn_random``, ``chance``, ``train_img_s``, ``loader_img_s``,
    ``backbone`` (a ``load_pretrained`` folder), ``checkpoint`` and ``wall_s``.
    """
    from chadavit.experiments.pretraining import pretrain
    from chadavit.pretrain.config import load_config

    t0 = time.perf_counter()
    out = Path(out_dir)
    cfg = load_config("demo", [f"train.out_dir={out / 'pretrain'}", f"train.progress={str(progress).lower()}",
                               *overrides])
    from chadavit.pretrain.report import clean, write_summary

    summary = clean(pretrain(cfg))  # a re-run into the same folder reports the finished run (already_finished)
    summary["demo_wall_s"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    write_summary(summary, out / "demo_summary.json")
    return summary


ONE_CHANNEL_NANO = "random:one_channel_vit_tiny,embed_dim=64,depth=4,num_heads=4,mlp_dim=256,img_size=64"


PRETRAINED = "ChAda-ViT nano pretrained"
VERDICT_TASKS = {"synthetic": "localisation linear"}  # suite -> the task judged alone; other suites: mean gap


def suite_dir(out_dir: str | Path, suite: str) -> Path:
    """Where the demo writes a suite's report: ``OUT/eval`` (synthetic) or ``OUT/eval_<suite>``."""
    return Path(out_dir) / ("eval" if suite == "synthetic" else f"eval_{suite}")


def run_demo_evaluation(summary: dict[str, Any], out_dir: str | Path, progress: bool = True,
                        suites: tuple[str, ...] = ("synthetic", "real")) -> dict[str, Any]:
    """The evaluation suites for the model just trained (and a One-Channel ViT nano, synthetic suite only).

    Every report also holds the baselines that need no training (raw pixels, CellProfiler features from
    cp_measure, and the random init of the trained model's architecture and config;
    :mod:`chadavit.evaluation.baselines`), and the hybrid of CellProfiler and the trained model.
    Writes ``out_dir/eval`` (synthetic) and ``out_dir/eval_<suite>`` (others); returns each suite's summary.
    """
    from chadavit.evaluation import run_suite
    from chadavit.evaluation.ahead import measure_suites_ahead

    # every suite's CellProfiler crops, started now on the core that the one-threaded probes leave idle
    measure_suites_ahead([(suite, suite_dir(out_dir, suite)) for suite in suites])
    backbone = Path(summary["backbone"])
    # the random init of the same architecture and config is added by run_suite as a baseline ("random init (...)")
    specs = [f"{PRETRAINED}={backbone}", f"One-Channel ViT nano random init={ONE_CHANNEL_NANO}"]
    out = {}
    for suite in suites:
        where = suite_dir(out_dir, suite)
        out[suite] = run_suite(suite, specs if suite == "synthetic" else specs[:1], where, progress=progress,
                               skip_missing=True, figures=suite == "synthetic")
    return out


def _untrained_refs(table: Any, task: str, metric: str) -> dict[str, float]:
    """Raw pixels and the best random init on one task (the issue-10 bar besides the best baseline)."""
    from chadavit.evaluation.judging import score_column

    sub = table[(table["task"] == task) & (table["metric"] == metric)]
    out = {}
    col = score_column(sub)  # medians over seeds
    pix = sub[sub["model"] == "raw_pixels"][col]
    if len(pix):
        out["raw pixels"] = float(pix.iloc[0])
    rnd = sub[sub["model"].astype(str).str.startswith("random init")][col]
    if len(rnd):
        out["random init"] = float(rnd.max())
    return out


def demo_verdict(tables: dict[str, Any], model: str = PRETRAINED) -> list[str]:
    """Plain lines: does the pretrained model beat the BEST baseline (pixels, CellProfiler, random init)?

    Synthetic suite: the localisation linear probe; other suites: the mean gap over their tasks (% metrics
    on 0-1 so they average with R^2). Each line also says how it does against raw pixels and random init
    alone, and every suite gets its suite-mean line. Scores are medians over seeds. A loss is said as a loss.
    """
    from chadavit.evaluation.baselines import gap_table

    lines = []
    for suite, table in tables.items():
        gaps = gap_table(table, table.attrs.get("primary", {}), table.attrs.get("baselines", []))
        g = gaps[gaps["model"] == model]
        if g.empty:
            lines.append(f"{suite}: no comparison (no task ran)")
            continue
        task = VERDICT_TASKS.get(suite)
        if task is not None and task in set(g["task"]):
            r = g[g["task"] == task].iloc[0]
            word = "BEATS" if r["gap"] > 0 else "LOSES TO"
            refs = _untrained_refs(table, task, str(r["metric"]))
            vs = ", ".join(f"{'beats' if r['score'] > v else 'LOSES TO'} {k} {v:.1f}" for k, v in refs.items())
            lines.append(f"{suite} {task}: pretrained {r['score']:.1f} {word} the best baseline "
                         f"({r['best_baseline']} {r['baseline_score']:.1f}; gap {r['gap']:+.1f})"
                         + (f"; {vs}" if vs else ""))
            lines += _suite_mean_line(suite, table, model)  # one task won must not stand for the suite
            continue
        mean = float(g["gap_unit"].mean())
        wins = int((g["gap"] > 0).sum())
        word = "BEATS" if mean > 0 else "LOSES TO"
        untrained = [b for b in table.attrs.get("baselines", []) if b == "raw_pixels" or b.startswith("random init")]
        ref = gap_table(table, table.attrs.get("primary", {}), untrained)
        ref = ref[ref["model"] == model]  # the same gaps, against the better of raw pixels and random init only
        extra = ""
        if len(ref):
            m = float(ref["gap_unit"].mean())
            extra = (f"; vs the better of raw pixels and random init: {'beats' if m > 0 else 'LOSES TO'} them "
                     f"(mean gap {m:+.3f}, better on {int((ref['gap'] > 0).sum())} of {len(ref)} tasks)")
        lines.append(f"{suite} suite: pretrained {word} the best baseline per task on average (mean gap "
                     f"{mean:+.3f}; better on {wins} of {len(g)} tasks){extra}")
        lines += _suite_mean_line(suite, table, model)
    return lines


def _suite_mean_line(suite: str, table: Any, model: str) -> list[str]:
    """The issue-10 bar as stated: the model's mean over the suite's tasks against each baseline's mean."""
    from chadavit.evaluation.baselines import mean_scores

    means = mean_scores(table, table.attrs.get("primary", {}))
    if model not in means:
        return []
    rnd = [v for k, v in means.items() if k.startswith("random init")]
    refs = {"raw pixels": means.get("raw_pixels"), "random init": max(rnd) if rnd else None,
            "CellProfiler (cp_measure)": means.get("CellProfiler (cp_measure)")}
    vs = ", ".join(f"{'BEATS' if means[model] > v else 'LOSES TO'} {k} {v:.3f}" for k, v in refs.items()
                   if v is not None)
    return [f"{suite} suite mean (% as fractions): pretrained {means[model]:.3f} {vs}"] if vs else []


def format_summary(s: dict[str, Any]) -> str:
    from chadavit.pretrain.report import collapse_line, finished_line, num

    lines = [
        *finished_line(s),
        (f"pretraining: {s['steps']} steps, final DINO loss {num(s.get('final_loss'), '{:.3f}')}, "
         f"{s['demo_wall_s']:.0f} s"),
        (f"throughput: training {num(s.get('train_img_s'), '{:.1f}')} images/s, data loading "
         f"{num(s.get('loader_img_s'), '{:.1f}')} images/s"),
        f"outputs: backbone {s.get('backbone')}, checkpoint {s['checkpoint']}, loss curve {s.get('loss_curve')}",
        *collapse_line(s),
    ]
    if "knn_trained" in s:
        verdict = ("better than random init" if s["knn_trained"] > s["knn_random"] + 0.05
                   else "NOT clearly better than random init")
        lines.append(f"learning check (kNN localisation, held-out synthetic cells, chance {s['chance']:.2f}): "
                     f"pretrained {s['knn_trained']:.3f} vs random init {s['knn_random']:.3f} -> {verdict} "
                     "(the evaluation below compares with every baseline)")
    if s.get("skipped_images"):
        lines.append(f"skipped unreadable images: {s['skipped_images']}")
    return "\n".join(lines)
