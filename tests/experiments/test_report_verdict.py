"""The experiment report judges task by task on medians over seeds (chadavit.evaluation.judging), not on means."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from chadavit.experiments import load_experiment
from chadavit.experiments.report import make_report
from chadavit.experiments.runner import METRICS
from chadavit.experiments.verdict import tally, task_verdicts

from .conftest import tiny_experiment


def _row(model: str, task: str, median: float, mean: float, metric: str = "top1") -> dict:
    return {"model": model, "task": task, "metric": metric, "mean": mean, "std": 5.0, "n_seeds": 5,
            "median": median, "outliers": ""}


def _eval(label: str) -> list[dict]:
    # "stage linear": one wild seed drags the model's mean below raw pixels; its median is above.
    # "stage kNN": the model's own random init is better (a loss the report must say).
    return [_row(label, "stage linear", 60.0, 40.0), _row("raw_pixels", "stage linear", 50.0, 55.0),
            _row(f"random init ({label})", "stage linear", 45.0, 45.0),
            _row("CellProfiler (cp_measure)", "stage linear", 58.0, 58.0),
            _row(f"CellProfiler + {label}", "stage linear", 90.0, 90.0),
            _row(label, "stage kNN", 30.0, 30.0), _row("raw_pixels", "stage kNN", 20.0, 20.0),
            _row(f"random init ({label})", "stage kNN", 35.0, 35.0),
            _row(label, "stage mse", 2.0, 2.0, "mse"), _row("raw_pixels", "stage mse", 3.0, 3.0, "mse")]


def test_task_verdicts_use_medians_and_leave_hybrids_out() -> None:
    summary = pd.DataFrame(_eval("M"))
    v = task_verdicts(summary, {"stage linear": ["top1"], "stage kNN": ["top1"], "stage mse": ["mse"]}, "M")
    lin, knn, mse = (v[v["task"] == t].iloc[0] for t in ("stage linear", "stage kNN", "stage mse"))
    assert lin["score"] == 60.0 and lin["vs raw pixels"] == "not worse"  # by the mean it would lose
    assert lin["best_baseline"] == "CellProfiler (cp_measure)"  # not the hybrid at 90
    assert knn["vs its own random init"] == "worse" and knn["best_baseline"] == "random init (M)"
    assert mse["vs raw pixels"] == "not worse" and mse["vs its own random init"] == "n/a"  # lower MSE is better
    assert tally(v) == {"raw pixels": (3, 3), "its own random init": (1, 2), "the best baseline": (2, 3)}


def test_report_tables_show_medians_and_wins_and_losses_per_task(tmp_path) -> None:
    path = tiny_experiment(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["report"]["table3"]["columns"] = [{"task": "stage linear", "header": "stage linear"}]
    path.write_text(yaml.safe_dump(data))
    exp = load_experiment(path)
    run = exp.get("chada")
    rdir = exp.run_dir(run)
    rdir.mkdir(parents=True)
    metrics = {"label": run.label, "family": run.family, "model": run.model, "parameters": 1000, "embed_dim": 16,
               "depth": 1, "eval": _eval(run.label), "primary": {"stage linear": ["top1"], "stage kNN": ["top1"]},
               "pretrain": {"steps": 1}, "wall_s": {"pretrain": 1.0, "eval": 1.0, "total": 2.0}}
    (rdir / METRICS).write_text(json.dumps(metrics))
    out = tmp_path / "report"
    make_report(exp, out, say=lambda *_: None)
    t3 = pd.read_csv(out / "table3.csv")
    assert t3.loc[0, "stage linear median"] == 60.0 and t3.loc[0, "stage linear mean"] == 40.0
    assert "60.0 ± 5.0" in (out / "table3.md").read_text()
    verdict = pd.read_csv(out / "task_by_task.csv")
    assert list(verdict["task"]) == ["stage linear", "stage kNN"] and set(verdict["run"]) == {"chada"}
    text = (out / "report.md").read_text()
    assert "ChAda-ViT: not worse than raw pixels on 2 of 2 tasks, than its own random init on 1 of 2 tasks" in text
    assert "ChAda-ViT is worse than its own random init on 1 of 2 tasks: stage kNN (30 vs 35)" in text
    assert str(tmp_path) not in text  # the experiment file and results folder without this machine's paths
