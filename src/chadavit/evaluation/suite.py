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

import itertools
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
from chadavit.evaluation.features import LoadedModel, extract_features, load_model_spec
from chadavit.evaluation.reconstruction import channel_reconstruction, reconstruction_targets
from chadavit.evaluation.runlog import RESULT_COLUMNS, dataset_notes, save_task_rows, task_key
from chadavit.evaluation.suite_schema import SuiteError, check_labels, check_suite, read_suite_yaml

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
PER_CHANNEL_MEASUREMENTS = ("cellprofiler", "hybrid", "handcrafted")  # encoder kinds without a missing-channel curve
PROTOCOLS = ("linear", "knn", "regression", "reconstruction", "moa", "missing_channels")
PRIMARY = {"linear": ["top1"], "knn": ["top1"], "regression": ["r2"], "reconstruction": ["r2"],
           "moa": ["nsc", "nsc_chance", "nscb", "nscb_chance"], "missing_channels": None}


@dataclass
class Task:
    name: str
    dataset: str
    protocol: str
    label: str | None = None
    features: str = "cls"
    params: dict[str, Any] = field(default_factory=dict)


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


# ---------------------------------------------------------------------------------------------- tasks
def _split(data: EvalData, labels: np.ndarray | None, seed: int, test_fraction: float,
           train_on_val: bool = False) -> tuple[np.ndarray, np.ndarray]:
    if "split" in data.labels.columns:
        return P.split_from_column(data.labels["split"], train_on_val)
    if "group" in data.labels.columns:  # cells of one field (block) stay on one side
        from chadavit.evaluation.splits import grouped_split_indices

        return grouped_split_indices(data.labels["group"].to_numpy(), seed, test_fraction, labels)
    return P.train_test_split_indices(labels, seed, test_fraction, n=len(data))


def _probe_cfg(params: dict[str, Any]) -> P.ProbeConfig:
    keys = ("epochs", "lr", "weight_decay", "batch_size")
    return P.ProbeConfig(**{k: type(getattr(P.ProbeConfig, k))(params[k]) for k in keys if k in params})


def _labels(data: EvalData, task: Task) -> np.ndarray:
    if task.label is None or task.label not in data.labels.columns:
        raise SuiteError(f"task {task.name!r}: dataset {data.name} has no label column {task.label!r} "
                         f"(columns: {list(data.labels.columns)})")
    return data.labels[task.label].to_numpy()


class _Runner:
    def __init__(self, suite: Suite, out_dir: Path, progress: bool, say: Any, device: str = "cpu") -> None:
        self.suite, self.out_dir, self.progress, self.say = suite, out_dir, progress, say
        self.device = device
        self.cache = out_dir / "cache"
        self.artifacts: dict[str, Any] = {}

    def features(self, lm: LoadedModel, data: EvalData, kind: str, channels: Sequence[int] | None = None) -> np.ndarray:
        return extract_features(lm, data, (kind,), channels=channels, batch_size=self.suite.batch_size,
                                cache_dir=self.cache, progress=self.progress)[kind]

    def run_task(self, lm: LoadedModel, task: Task, data: EvalData) -> list[dict[str, Any]]:
        prm, seeds = task.params, self.suite.seeds
        test_fraction = float(prm.get("test_fraction", 0.3))
        rows: list[dict[str, Any]] = []

        def add(seed: int, metrics: dict[str, float]) -> None:
            rows.extend([{"model": lm.label, "task": task.name, "dataset": data.name, "protocol": task.protocol,
                      "features": task.features, "seed": seed, "metric": k, "value": float(v)}
                     for k, v in metrics.items()])

        if task.protocol in ("linear", "knn", "regression"):
            y = _labels(data, task)
            x = self.features(lm, data, task.features)
            strat = None if task.protocol == "regression" else y
            for s in seeds:
                tr, te = _split(data, strat, s, test_fraction, bool(prm.get("train_on_val", False)))
                if task.protocol == "linear":
                    m = P.linear_probe(x[tr], y[tr], x[te], y[te], seed=s, cfg=_probe_cfg(prm))
                elif task.protocol == "knn":
                    m = P.knn_classify(x[tr], y[tr], x[te], y[te], k=int(prm.get("k", 20)),
                                       temperature=float(prm.get("temperature", 0.07)))
                else:
                    m = P.linear_regression(x[tr], y[tr].astype(np.float64), x[te], y[te].astype(np.float64), seed=s,
                                            cfg=_probe_cfg(prm), solver=str(prm.get("solver", "sgd")))
                add(s, m)
        elif task.protocol == "moa":
            x = self.features(lm, data, task.features)
            cols = tuple(prm.get("treatment", ("compound", "concentration")))
            for s in seeds:
                add(s, P.moa_retrieval(x, data.labels, seed=s, cell_fraction=float(prm.get("cell_fraction", 0.8)),
                                       control=prm.get("control"), treatment_cols=cols))
        elif task.protocol == "reconstruction":
            fixed = data.fixed_channels
            target_name = prm.get("target_channel")
            if fixed is None or target_name not in fixed:
                raise SuiteError(f"task {task.name!r}: dataset {data.name} must have fixed channels including "
                                 f"{target_name!r}; has {fixed}")
            t_idx = fixed.index(target_name)
            inputs = [i for i in range(len(fixed)) if i != t_idx]
            z = self.features(lm, data, "cls", channels=inputs)
            targets = reconstruction_targets(data.images, t_idx, prm.get("target_size"))
            for s in seeds:
                tr, te = _split(data, None, s, test_fraction)
                m, pred = channel_reconstruction(z[tr], targets[tr], z[te], targets[te], seed=s,
                                                 epochs=int(prm.get("epochs", 30)),
                                                 width=float(prm.get("width", 1.0)), lr=float(prm.get("lr", 3e-3)),
                                                 device=self.device)
                add(s, {k: m[k] for k in ("r2", "mse", "mae")})
                if s == seeds[0]:
                    self.artifacts.setdefault("reconstruction_by_task", {}).setdefault(task.name, {})[lm.label] = {
                        "index": te[:4], "pred": pred[:4], "target": targets[te[:4]], "inputs": inputs,
                        "target_name": target_name, "data": data}
        elif task.protocol == "missing_channels":
            fixed = data.fixed_channels
            if fixed is None:
                raise SuiteError(f"task {task.name!r}: missing-channel curve needs a fixed channel set")
            y = _labels(data, task)
            c = len(fixed)
            combos = {k: list(itertools.combinations(range(c), k)) for k in range(1, c + 1)}
            feats = {cb: self.features(lm, data, task.features, channels=None if len(cb) == c else cb)
                     for k in combos for cb in combos[k]}
            dims = {f.shape[1:] for f in feats.values()}
            if len(dims) > 1:
                raise SuiteError(f"task {task.name!r}: {lm.label} gives {task.features} features of different sizes "
                                 f"for different channel subsets {sorted(dims)}")
            head = str(prm.get("head", "linear"))
            for s in seeds:
                tr, te = _split(data, y, s, test_fraction)
                rng = np.random.default_rng([s, 17])
                full = feats[combos[c][0]]
                views = []
                for k in range(1, c + 1):
                    pick = rng.integers(len(combos[k]), size=len(te))
                    views.append((np.stack([feats[combos[k][j]][i] for i, j in zip(te, pick)]), y[te]))
                if head == "knn":
                    scores = [P.knn_classify(full[tr], y[tr], xv, yv, k=int(prm.get("k", 20))) for xv, yv in views]
                else:  # one probe per seed, scored on every k
                    scores = P.linear_probe_multi(full[tr], y[tr], views, seed=s, cfg=_probe_cfg(prm))
                add(s, {f"top1@{k}/{c}": m["top1"] for k, m in zip(range(1, c + 1), scores)})
        return rows


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


def _run_suite(suite: Suite, model_specs: Sequence[str | LoadedModel], out_dir: str | os.PathLike[str],
               seeds: Sequence[int] | None, figures: bool, progress: bool, say: Any,
               skip_missing: bool = False, device: str = "cpu", baselines: bool = True,
               precision: str = "fp32") -> pd.DataFrame:
    from chadavit.evaluation.tables import write_tables

    if seeds is not None:
        suite.seeds = [int(s) for s in seeds]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    load_errors: dict[str, str] = {}
    datasets = load_suite_datasets(suite, say, skip_missing, load_errors)
    check_labels(suite.tasks, datasets, suite.source)  # before any model is loaded or feature computed
    models = [m if isinstance(m, LoadedModel) else load_model_spec(m, device, precision) for m in model_specs]
    if not models:
        raise SuiteError("give at least one model spec")
    baseline_labels = _with_baselines(models, device, say, precision) if baselines else []
    if baselines:  # CellProfiler + each trained model's compact embedding, next to it
        from chadavit.evaluation.cellprofiler import hybrid_models

        models += hybrid_models(models, baseline_labels)
    from chadavit.evaluation.judging import unseen_channel_lines

    from tqdm.auto import tqdm

    bar = tqdm(total=len(models) * len(suite.tasks), desc=f"suite {suite.name}", unit="task", disable=not progress)
    if progress and say is print:
        say = tqdm.write  # messages above the bar instead of through it
    runner = _Runner(suite, out, progress, say, device)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    failures: list[dict[str, str]] = []
    primaries: dict[str, list[str]] = {}
    timings: dict[str, float] = {}
    meta = {"suite": suite.name, "source": suite.source, "seeds": suite.seeds, "skipped": skipped,
            "failures": failures, "tasks": suite.tasks, "timings": timings, "total_s": 0.0,
            "models": [(m.label, m.spec) for m in models], "datasets": dataset_notes(datasets),
            "baselines": baseline_labels,
            "unseen_channels": unseen_channel_lines(models, datasets, suite.tasks, baseline_labels)}

    def write() -> pd.DataFrame:
        results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        summary = summarise(results) if len(results) else pd.DataFrame(columns=["model", "task", "metric", "mean",
                                                                                   "std", "n_seeds", "median"])
        summary.attrs.update(primary=primaries, baselines=baseline_labels)  # figures read these
        meta["total_s"] = time.time() - t_start
        write_tables(results, summary, primaries, meta, out)
        return summary

    for lm in models:
        t_model = time.time()
        for task in suite.tasks:
            data = datasets[task.dataset]
            bar.set_postfix_str(f"{lm.label[:20]} / {task.name[:28]}")
            if data is None and task.dataset in load_errors:
                failures.append({"model": lm.label, "task": task.name, "error": load_errors[task.dataset]})
                bar.update(1)
                continue
            if data is None:
                bar.update(1)
                if task.name not in skipped:
                    skipped.append(task.name)
                    say(f"SKIPPED task {task.name}: dataset {task.dataset} is unavailable")
                continue
            if task.protocol == "missing_channels" and lm.model.config.architecture in PER_CHANNEL_MEASUREMENTS:
                # measured per channel: a subset is another feature set, not the same read-out with channels
                # missing, and measuring every subset costs (2^C - 1) x the whole task
                say(f"{lm.label:28s} {task.name:28s} not run: per-channel measurements have no missing-channel "
                    "read-out")
                bar.update(1)
                continue
            t0 = time.time()
            done = out / "tasks" / f"{task_key(lm, task, data, suite.seeds)}.csv"
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
                failures.append({"model": lm.label, "task": task.name, "error": error})
                say(f"FAILED {lm.label} / {task.name}: {error}")
                bar.update(1)
                write()
                continue
            bar.update(1)
            rows += task_rows
            metrics = list(dict.fromkeys(r["metric"] for r in task_rows))
            primaries[task.name] = _primary(task, metrics)
            main = primaries[task.name][0] if primaries[task.name] else metrics[0]
            vals = [r["value"] for r in task_rows if r["metric"] == main]
            spread = f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else ""
            write()  # every finished task is on disk at once: a killed run keeps it, a rerun resumes after it
            say(f"{lm.label[:28]:28s} {task.name[:28]:28s} {main} {np.mean(vals):7.3f}{spread}"
                f"  ({time.time() - t0:.1f} s)")
        timings[lm.label] = time.time() - t_model
    bar.close()
    summary = write()
    if figures:
        from chadavit.evaluation.figures import make_figures

        try:
            make_figures(suite, models, datasets, runner, summary, out / "figures", say=say)
        except Exception as exc:  # a broken figure must not lose the numbers
            log.exception("figures failed")
            say(f"WARNING: figures failed: {type(exc).__name__}: {exc}")
        summary = write()  # again, now listing the figures
    say(f"wrote {out / 'results.md'} and {out / 'summary.csv'} ({time.time() - t_start:.0f} s total)")
    summary.attrs["primary"] = primaries
    summary.attrs["baselines"] = baseline_labels
    summary.attrs["failures"] = failures  # the CLI exits 1 when any task failed
    return summary


def _with_baselines(models: list[LoadedModel], device: str, say: Any, precision: str = "fp32") -> list[str]:
    """Append the baseline encoders to ``models`` in place; returns the labels that are baselines."""
    from chadavit.evaluation.baselines import add_baselines

    full, labels = add_baselines(models, device, precision)
    added = [m.label for m in full[len(models):]]
    models[:] = full
    if added:
        say("baselines added: " + ", ".join(added))
    return labels
