"""What a suite file may say, checked before any dataset is read or model loaded.

``chadavit eval`` used to ignore misspelt keys (``featurs: patch_mean`` ran on CLS) and found a missing
label only after computing features. :func:`read_suite_yaml` and :func:`check_suite` refuse both with one
:class:`SuiteError` naming the file, the task and the key (with the nearest valid spelling);
:func:`check_labels` checks every task's label against its loaded dataset before features are computed.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

import yaml

from chadavit.errors import ChadavitError

TOP_KEYS = ("name", "seeds", "batch_size", "datasets", "tasks", "figures", "threads", "variables")
TASK_KEYS = ("name", "dataset", "protocol", "label", "features", "test_fraction", "primary")
_PROBE = ("epochs", "lr", "weight_decay", "batch_size")
PROTOCOL_KEYS: dict[str, tuple[str, ...]] = {
    "linear": (*_PROBE, "solver", "class_weight", "train_on_val"),
    "knn": ("k", "temperature", "train_on_val"),
    "regression": (*_PROBE, "solver", "train_on_val"),
    "moa": ("treatment", "cell_fraction", "control"),
    "reconstruction": ("target_channel", "target_size", "epochs", "width", "lr"),
    "missing_channels": (*_PROBE, "head", "k"),
}
NEEDS_LABEL = ("linear", "knn", "regression", "missing_channels")
FIGURE_KEYS = ("attention", "embedding")
FEATURE_KINDS = ("cls", "patch_mean", "all_tokens")  # as chadavit.evaluation.features.FEATURE_KINDS
SOLVERS = {"linear": ("sgd", "logistic"), "regression": ("sgd", "ridge")}  # as chadavit.evaluation.protocols


class SuiteError(ChadavitError, ValueError):
    """A suite file is malformed; the message names the file and the key."""


def read_suite_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a suite file; unreadable or broken YAML is a :class:`SuiteError`."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SuiteError(f"{path}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the suite file ({exc})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite file is a mapping with datasets: and tasks:, got {type(raw).__name__}")
    return raw


def _unknown(keys: Any, valid: tuple[str, ...], where: str) -> str | None:
    bad = [str(k) for k in keys if k not in valid]
    if not bad:
        return None
    hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, valid, 1)) else repr(k)
             for k in bad]
    return f"{where}: unknown key(s) {', '.join(hints)}; valid: {', '.join(valid)}"


def _dataset_problems(name: str, spec: Any, adapters: dict[str, Any]) -> list[str]:
    if not isinstance(spec, dict) or spec.get("adapter") not in adapters:
        adapter = spec.get("adapter") if isinstance(spec, dict) else None
        return [f"dataset {name!r} has unknown dataset adapter {adapter!r}; choose one of {', '.join(adapters)}"]
    params = inspect.signature(adapters[spec["adapter"]]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []  # the adapter takes any setting
    valid = ("adapter", "optional", *params)
    problem = _unknown(spec, valid, f"dataset {name!r} ({spec['adapter']})")
    return [problem] if problem else []


def _task_problems(i: int, task: Any, datasets: dict[str, Any]) -> list[str]:
    if not isinstance(task, dict):
        return [f"task {i} is not a mapping ({task!r})"]
    missing = [k for k in ("name", "dataset", "protocol") if k not in task]
    if missing:
        return [f"task {i} lacks {', '.join(map(repr, missing))}"]
    name, protocol = task["name"], task["protocol"]
    if protocol not in PROTOCOL_KEYS:
        return [f"task {name!r} has unknown protocol {protocol!r}; use one of {tuple(PROTOCOL_KEYS)}"]
    problems = []
    if task["dataset"] not in datasets:
        problems.append(f"task {name!r} uses undefined dataset {task['dataset']!r}")
    if (p := _unknown(task, TASK_KEYS + PROTOCOL_KEYS[protocol], f"task {name!r} ({protocol})")) is not None:
        problems.append(p)
    if protocol in NEEDS_LABEL and not task.get("label"):
        problems.append(f"task {name!r} ({protocol}) needs label: (a label column of dataset {task['dataset']!r})")
    if "solver" in task and task["solver"] not in SOLVERS.get(protocol, ()):
        problems.append(f"task {name!r} ({protocol}): solver {task['solver']!r} is not one of "
                        f"{', '.join(SOLVERS.get(protocol, ()))}")
    if "class_weight" in task and (task["class_weight"] != "balanced" or task.get("solver") != "logistic"):
        problems.append(f"task {name!r} ({protocol}): class_weight: balanced is the one choice, with solver: logistic")
    if task.get("features", "cls") not in FEATURE_KINDS:
        problems.append(f"task {name!r}: features {task['features']!r} is not one of {', '.join(FEATURE_KINDS)}")
    return problems


def check_suite(raw: dict[str, Any], path: Path, adapters: dict[str, Any]) -> None:
    """Every key of a suite known, every task complete; all problems in one :class:`SuiteError`."""
    for key in ("datasets", "tasks"):
        if key not in raw:
            raise SuiteError(f"{path}: missing top-level key {key!r}")
    problems = [p] if (p := _unknown(raw, TOP_KEYS, "top level")) else []
    datasets, tasks = raw["datasets"] or {}, raw["tasks"] or []
    if not isinstance(datasets, dict) or not isinstance(tasks, list):
        raise SuiteError(f"{path}: datasets: must be a mapping of name -> settings and tasks: a list")
    for name, spec in datasets.items():
        problems += _dataset_problems(name, spec, adapters)
    for i, task in enumerate(tasks):
        problems += _task_problems(i, task, datasets)
    figures = raw.get("figures") or {}
    if not isinstance(figures, dict):
        problems.append(f"figures: must be a mapping, got {figures!r}")
    elif (p := _unknown(figures, FIGURE_KEYS, "figures")) is not None:
        problems.append(p)
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        problems.append(f"seeds: must be a list of integers, got {seeds!r}")
    if problems:
        raise SuiteError(f"{path}: " + "; ".join(problems))


def check_labels(tasks: list[Any], datasets: dict[str, Any], source: str) -> None:
    """Each task's label is a column of its (loaded) dataset: say so before any feature is computed."""
    problems = []
    for t in tasks:
        data = datasets.get(t.dataset)
        if data is None or t.label is None or t.label in data.labels.columns:
            continue
        problems.append(f"task {t.name!r}: dataset {t.dataset} has no label column {t.label!r} "
                        f"(columns: {', '.join(map(str, data.labels.columns))})")
    if problems:
        raise SuiteError(f"{source}: " + "; ".join(problems))
