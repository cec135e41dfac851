"""Evaluation suites: YAML files naming datasets and tasks, run over several models and seeds.

A suite (see ``src/chadavit/configs/eval_*.yaml``)::

    name: synthetic
    seeds: [0, 1, 2, 3, 4]
    datasets:
      cells: {adapter: synthetic, n: 300, channels: [DNA, protein, membrane]}
      yeast: {adapter: deeploc_yeast, optional: true}
    tasks:
      - {name: localisation, dataset: cells, protocol: linear, label: localisation, features: cls}
    figures: {attention: {dataset: cells, n_images: 3}, embedding: {datasets: [cells, yeast]}}

Protocols: ``linear``, ``knn``, ``regression``, ``reconstruction``, ``moa``, ``missing_channels`` (see
``docs/evaluation.md``). String values may use ``${data_root}`` and ``${shared}``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from chadavit.evaluation import protocols as P
from chadavit.evaluation.data import DatasetLayoutError, EvalData
from chadavit.evaluation.datasets import ADAPTERS, load_dataset
from chadavit.evaluation.features import LoadedModel, load_model_spec
from chadavit.evaluation.runlog import RESULT_COLUMNS, dataset_notes, save_task_rows, task_key
from chadavit.evaluation.suite_schema import SuiteError, check_labels, check_suite, read_suite_yaml
from chadavit.evaluation.tasks import Task, TaskRunner

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
PER_CHANNEL_MEASUREMENTS = ("cellprofiler", "hybrid", "handcrafted")  # encoder kinds without a missing-channel curve
PROTOCOLS = ("linear", "knn", "regression", "reconstruction", "moa", "missing_channels")
WRITE_EVERY_S = 10.0  # the report is rewritten at most this often as tasks finish (each task's rows: tasks/, at once)
PRIMARY = {"linear": ["top1"], "knn": ["top1"], "regression": ["r2"], "reconstruction": ["r2"],
           "moa": ["nsc", "nsc_chance", "nscb", "nscb_chance"], "missing_channels": None}


@dataclass
class Suite:
    name: str
    datasets: dict[str, dict[str, Any]]
    tasks: list[Task]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    batch_size: int = 64
    figures: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    threads: int | None = None


def _expand(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        orig = value
        for k, v in variables.items():
            value = value.replace("${" + k + "}", v)
        if value != orig and orig.startswith("${") and orig.endswith("}") and orig.count("${") == 1:
            parsed = yaml.safe_load(value)  # a whole-value variable keeps its YAML type: size: ${image_size} -> 224
            return parsed if isinstance(parsed, int | float | bool) or parsed is None else value
        return value
    if isinstance(value, list):
        return [_expand(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, variables) for k, v in value.items()}
    return value


def default_variables() -> dict[str, str]:
    repo_shared = Path(__file__).resolve().parents[3].parent / "shared"
    return {"shared": os.environ.get("CHADAVIT_SHARED", str(repo_shared)),
            "data_root": os.environ.get("CHADAVIT_DATA", str(Path.cwd() / "data"))}


def list_suites() -> list[str]:
    return sorted(p.stem.removeprefix("eval_") for p in CONFIG_DIR.glob("eval_*.yaml"))


def load_suite(name_or_file: str | os.PathLike[str], variables: dict[str, str] | None = None) -> Suite:
    """A preset name (``synthetic`` -> ``configs/eval_synthetic.yaml``) or a YAML file path."""
    p = Path(name_or_file)
    if not p.is_file():
        cand = CONFIG_DIR / f"eval_{name_or_file}.yaml"
        if not cand.is_file():
            raise SuiteError(f"suite {name_or_file!r} is neither a file nor a preset; "
                             f"presets: {', '.join(list_suites())}")
        p = cand
    raw = read_suite_yaml(p)
    defaults = {str(k): str(v) for k, v in (raw.pop("variables", None) or {}).items()}
    raw = _expand(raw, default_variables() | defaults | (variables or {}))
    check_suite(raw, p, ADAPTERS)  # every key known, every task complete, before any dataset is read
    tasks = []
    for t in raw["tasks"]:
        t = dict(t)
        tasks.append(Task(name=t.pop("name"), dataset=t.pop("dataset"), protocol=t.pop("protocol"),
                          label=t.pop("label", None), features=t.pop("features", "cls"), params=t))
    return Suite(name=str(raw.get("name", p.stem)), datasets=dict(raw["datasets"]), tasks=tasks,
                 seeds=[int(s) for s in raw.get("seeds", [0, 1, 2, 3, 4])], batch_size=int(raw.get("batch_size", 64)),
                 figures=dict(raw.get("figures") or {}), source=str(p),
                 threads=int(raw["threads"]) if raw.get("threads") else None)


def load_suite_datasets(suite: Suite, say: Any = print, skip_missing: bool = False,
                        errors: dict[str, str] | None = None) -> dict[str, EvalData | None]:
    """Load every dataset of the suite; an ``optional`` one (every one with ``skip_missing``) that is missing
    becomes None with a visible message, any other missing one raises `DatasetLayoutError`. A dataset that is
    there but fails to load for another reason becomes None with its error in ``errors`` (its tasks fail, the
    others run)."""
    out: dict[str, EvalData | None] = {}
    for name, spec in suite.datasets.items():
        spec = dict(spec)
        optional = bool(spec.pop("optional", False)) or skip_missing
        adapter = spec.pop("adapter")
        try:
            t0 = time.time()
            data = load_dataset(adapter, **spec)
            data.name = name
            out[name] = data
            say(f"dataset {name}: {len(data)} images via {adapter} ({time.time() - t0:.1f} s)")
        except DatasetLayoutError as exc:
            if not optional:
                raise
            say(f"SKIPPED dataset {name} (optional): {str(exc).splitlines()[0]}")
            out[name] = None
        except Exception as exc:
            if errors is None:
                raise
            errors[name] = f"loading dataset {name} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            say(f"FAILED {errors[name]}")
            out[name] = None
    return out


def _primary(task: Task, metrics: list[str]) -> list[str]:
    p = task.params.get("primary") or PRIMARY.get(task.protocol)
    return [m for m in metrics if m in p] if p else metrics


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (sample, ddof=1), median and outlier seeds over seeds per model, task and metric; the
    median is the task's score (:mod:`chadavit.evaluation.judging`)."""
    from chadavit.evaluation.judging import seed_stats

    g = results.groupby(["model", "task", "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, n_seeds="count")
    return out.reset_index().merge(seed_stats(results), on=["model", "task", "metric"], how="left", sort=False)


def run_suite(suite: Suite | str | os.PathLike[str], model_specs: Sequence[str | LoadedModel],
              out_dir: str | os.PathLike[str],
              seeds: Sequence[int] | None = None, figures: bool = True, progress: bool = True,
              say: Any = print, threads: int | None = None, skip_missing: bool = False,
              device: str = "cpu", baselines: bool = True, precision: str = "fp32") -> pd.DataFrame:
    """Run every task of ``suite`` for every model; write tables and figures to ``out_dir``.

    Returns the per-(model, task, metric) summary (``mean``, ``std``, ``n_seeds``; ``.attrs["primary"]`` maps
    each task to its main metrics for :func:`chadavit.evaluation.tables.wide_table`); ``out_dir`` gets
    ``results.md``, ``table.csv``, ``summary.csv``, ``results_per_seed.csv``, ``figures/`` and the feature
    ``cache/``. ``threads`` (else the suite's ``threads``, else torch's default) sets torch's CPU threads.
    ``skip_missing`` skips every missing dataset (and its tasks) instead of stopping with its expected layout.
    ``device`` runs the encoders and the reconstruction decoder there (``cuda``); probes stay on the CPU.
    ``baselines`` adds raw pixels, CellProfiler features and a random-init twin of each trained model
    (:mod:`chadavit.evaluation.baselines`), and a hybrid "CellProfiler + <model>" per trained model; the tables
    then show each model's gap to the best baseline.
    ``precision`` (``fp32``/``bf16``/``auto``) is the encoders' feature-extraction precision.
    """
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    n_threads = threads or suite.threads
    if n_threads:
        with P.torch_threads(int(n_threads)):
            return _run_suite(suite, model_specs, out_dir, seeds, figures, progress, say, skip_missing, device,
                              baselines, precision)
    return _run_suite(suite, model_specs, out_dir, seeds, figures, progress, say, skip_missing, device, baselines,
                      precision)


def _load_models(model_specs: Sequence[str | LoadedModel], device: str, precision: str, baselines: bool,
                 say: Any) -> tuple[list[LoadedModel], list[str]]:
    """The models asked for, then (with ``baselines``) the baselines and a hybrid per trained model."""
    models = [m if isinstance(m, LoadedModel) else load_model_spec(m, device, precision) for m in model_specs]
    if not models:
        raise SuiteError("give at least one model spec")
    baseline_labels = _with_baselines(models, device, say, precision) if baselines else []
    if baselines:  # CellProfiler + each trained model's compact embedding, next to it
        from chadavit.evaluation.cellprofiler import hybrid_models

        models += hybrid_models(models, baseline_labels)
    return models, baseline_labels


class _Report:
    """The results so far and everything ``results.md`` says about the run.

    Rewritten as tasks finish, at most every :data:`WRITE_EVERY_S` seconds (rewriting every table after each of a
    suite's ~100 tasks cost more than many probes), and whenever the run stops, however it stops; a finished task's
    rows are in ``tasks/`` at once, which is what a rerun resumes from.
    """

    def __init__(self, out: Path, meta: dict[str, Any], baseline_labels: list[str], t_start: float) -> None:
        self.out, self.meta, self.baseline_labels, self.t_start = out, meta, baseline_labels, t_start
        self.rows: list[dict[str, Any]] = []
        self.primaries: dict[str, list[str]] = {}
        self.written_at: float | None = None  # None: something is not on disk yet
        self.pending = False

    def flush(self) -> None:
        """Write the report if the last write is :data:`WRITE_EVERY_S` old (or there was none)."""
        self.pending = True
        if self.written_at is None or time.time() - self.written_at >= WRITE_EVERY_S:
            self.write()

    def write(self) -> pd.DataFrame:
        from chadavit.evaluation.tables import write_tables

        results = pd.DataFrame(self.rows, columns=RESULT_COLUMNS)
        summary = summarise(results) if len(results) else pd.DataFrame(columns=["model", "task", "metric", "mean",
                                                                                   "std", "n_seeds", "median"])
        summary.attrs.update(primary=self.primaries, baselines=self.baseline_labels)  # figures read these
        self.meta["total_s"] = time.time() - self.t_start
        write_tables(results, summary, self.primaries, self.meta, self.out)
        self.written_at, self.pending = time.time(), False
        return summary

    def fail(self, lm: LoadedModel, task: Task, error: str) -> None:
        self.meta["failures"].append({"model": lm.label, "task": task.name, "error": error})

    def add(self, task: Task, task_rows: list[dict[str, Any]]) -> str:
        """Keep a finished task's rows and write them out; returns its one-line score."""
        self.rows += task_rows
        metrics = list(dict.fromkeys(r["metric"] for r in task_rows))
        self.primaries[task.name] = _primary(task, metrics)
        main = self.primaries[task.name][0] if self.primaries[task.name] else metrics[0]
        vals = [r["value"] for r in task_rows if r["metric"] == main]
        spread = f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else ""
        self.flush()
        return f"{main} {np.mean(vals):7.3f}{spread}"


def _run_suite(suite: Suite, model_specs: Sequence[str | LoadedModel], out_dir: str | os.PathLike[str],
               seeds: Sequence[int] | None, figures: bool, progress: bool, say: Any,
               skip_missing: bool = False, device: str = "cpu", baselines: bool = True,
               precision: str = "fp32") -> pd.DataFrame:
    if seeds is not None:
        suite.seeds = [int(s) for s in seeds]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    load_errors: dict[str, str] = {}
    datasets = load_suite_datasets(suite, say, skip_missing, load_errors)
    check_labels(suite.tasks, datasets, suite.source)  # before any model is loaded or feature computed
    models, baseline_labels = _load_models(model_specs, device, precision, baselines, say)
    from chadavit.evaluation.ahead import measure_suite_ahead

    measure_suite_ahead(models, suite.tasks, datasets, out, suite.seeds)  # CellProfiler crops, on the idle core
    from tqdm.auto import tqdm

    from chadavit.evaluation.judging import unseen_channel_lines

    bar = tqdm(total=len(models) * len(suite.tasks), desc=f"suite {suite.name}", unit="task", disable=not progress)
    if progress and say is print:
        say = tqdm.write  # messages above the bar instead of through it
    runner = TaskRunner(suite, out, progress, say, device)
    meta = {"suite": suite.name, "source": suite.source, "seeds": suite.seeds, "skipped": [], "failures": [],
            "tasks": suite.tasks, "timings": {}, "total_s": 0.0, "models": [(m.label, m.spec) for m in models],
            "datasets": dataset_notes(datasets), "baselines": baseline_labels,
            "unseen_channels": unseen_channel_lines(models, datasets, suite.tasks, baseline_labels)}
    report = _Report(out, meta, baseline_labels, t_start)
    try:
        for lm in models:
            t_model = time.time()
            for task in suite.tasks:
                bar.set_postfix_str(f"{lm.label[:20]} / {task.name[:28]}")
                _run_one(lm, task, datasets[task.dataset], load_errors, runner, report, say)
                bar.update(1)
            meta["timings"][lm.label] = time.time() - t_model
    except BaseException:  # a run stopped halfway (Ctrl-C, an error) still leaves every finished task in the report
        if report.pending:
            report.write()
        raise
    bar.close()
    summary = report.write()
    if figures:
        from chadavit.evaluation.figures import make_figures

        try:
            make_figures(suite, models, datasets, runner, summary, out / "figures", say=say)
        except Exception as exc:  # a broken figure must not lose the numbers
            log.exception("figures failed")
            say(f"WARNING: figures failed: {type(exc).__name__}: {exc}")
        summary = report.write()  # again, now listing the figures
    say(f"wrote {out / 'results.md'} and {out / 'summary.csv'} ({time.time() - t_start:.0f} s total)")
    summary.attrs.update(primary=report.primaries, baselines=baseline_labels,
                         failures=meta["failures"])  # the CLI exits 1 when any task failed
    return summary


def _run_one(lm: LoadedModel, task: Task, data: EvalData | None, load_errors: dict[str, str], runner: TaskRunner,
             report: _Report, say: Any) -> None:
    """One (model, task): resumed from ``tasks/`` when done before, else run; a failure is listed, not raised."""
    out, skipped = report.out, report.meta["skipped"]
    if data is None and task.dataset in load_errors:
        report.fail(lm, task, load_errors[task.dataset])
        return
    if data is None:
        if task.name not in skipped:
            skipped.append(task.name)
            say(f"SKIPPED task {task.name}: dataset {task.dataset} is unavailable")
        return
    if task.protocol == "missing_channels" and lm.model.config.architecture in PER_CHANNEL_MEASUREMENTS:
        # measured per channel: a subset is another feature set, not the same read-out with channels
        # missing, and measuring every subset costs (2^C - 1) x the whole task
        say(f"{lm.label:28s} {task.name:28s} not run: per-channel measurements have no missing-channel read-out")
        return
    t0 = time.time()
    done = out / "tasks" / f"{task_key(lm, task, data, runner.suite.seeds)}.csv"
    try:
        if done.is_file():
            task_rows = pd.read_csv(done).to_dict("records")
            say(f"{lm.label:28s} {task.name:28s} resumed from {done.relative_to(out)}")
        else:
            task_rows = runner.run_task(lm, task, data)
            if not task_rows:
                raise RuntimeError("the task produced no result")
            save_task_rows(done, task_rows)
    except Exception as exc:  # one failing task must not lose the others: report it and go on
        log.debug("task %s failed", task.name, exc_info=True)
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        report.fail(lm, task, error)
        say(f"FAILED {lm.label} / {task.name}: {error}")
        report.flush()
        return
    score = report.add(task, task_rows)
    say(f"{lm.label[:28]:28s} {task.name[:28]:28s} {score}  ({time.time() - t0:.1f} s)")


def _with_baselines(models: list[LoadedModel], device: str, say: Any, precision: str = "fp32") -> list[str]:
    """Append the baseline encoders to ``models`` in place; returns the labels that are baselines."""
    from chadavit.evaluation.baselines import add_baselines

    full, labels = add_baselines(models, device, precision)
    added = [m.label for m in full[len(models):]]
    models[:] = full
    if added:
        say("baselines added: " + ", ".join(added))
    return labels
