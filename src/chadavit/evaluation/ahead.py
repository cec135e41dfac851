"""Which crops a suite's CellProfiler rows will measure, started in the background before those rows run.

A suite's models run one after the other, each task on one thread. The CellProfiler (cp_measure) row comes after
the models asked for, and its measurements cost more than all the probes of a model. :func:`measure_suite_ahead`
lists the crops of every feature set the CellProfiler encoder will be asked for (in task order: each task's
dataset, and the channel subset a reconstruction task reads) and hands them to background workers
(:mod:`chadavit.models.references.ahead`), which measure them on the core the probes leave idle. Feature sets
already in the feature cache, and tasks already finished (``tasks/``), are not started again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chadavit.evaluation.data import EvalData
from chadavit.evaluation.features import LoadedModel, feature_cache_path, select_channels
from chadavit.evaluation.runlog import task_key
from chadavit.evaluation.suite_schema import SuiteError
from chadavit.evaluation.tasks import reconstruction_channels
from chadavit.models.references import CellProfilerEncoder

log = logging.getLogger(__name__)


def feature_sets(lm: LoadedModel, tasks: Sequence[Any], datasets: dict[str, EvalData | None]
                 ) -> list[tuple[Any, EvalData, list[int] | None]]:
    """``(task, dataset, channels)`` of every feature set ``tasks`` read from the one-vector reference ``lm``, in
    task order (a reference has no missing-channel curve; a reconstruction reads every channel but its target)."""
    out = []
    for task in tasks:
        data = datasets.get(task.dataset)
        if data is None or task.protocol == "missing_channels":
            continue
        channels = None
        if task.protocol == "reconstruction":
            try:
                channels = reconstruction_channels(task, data)[1]
            except SuiteError:
                continue  # the task itself reports the problem
        out.append((task, data, channels))
    return out


def measure_suite_ahead(models: Sequence[LoadedModel], tasks: Sequence[Any], datasets: dict[str, EvalData | None],
                        out_dir: str | Path, seeds: Sequence[int]) -> int:
    """Start measuring, in the background, every crop that the CellProfiler rows of a suite writing to ``out_dir``
    will read; returns how many crops were started (0 where no worker pool is allowed, or all is cached)."""
    out = Path(out_dir)
    started = 0
    for lm in models:
        if not isinstance(lm.model, CellProfilerEncoder):
            continue
        for task, data, channels in feature_sets(lm, tasks, datasets):
            if (out / "tasks" / f"{task_key(lm, task, data, seeds)}.csv").is_file():
                continue
            zero_fill = lm.position_dependent
            if feature_cache_path(lm, data, "cls", channels, zero_fill, out / "cache").is_file():
                continue
            images, names = select_channels(data, channels, zero_fill)
            started += lm.model.measure_ahead(images, names)
    return started


def measure_suites_ahead(runs: Sequence[tuple[str, str | Path]], skip_missing: bool = True) -> int:
    """``(suite, out_dir)`` runs still to come (``chadavit demo``): each suite's datasets loaded quietly and its
    CellProfiler crops started, suite after suite, so that they are measured while other work leaves a core idle.
    A dataset that is missing or fails to load is left to the suite's own run, which reports it."""
    from chadavit.evaluation.features import load_model_spec
    from chadavit.evaluation.suite import load_suite, load_suite_datasets

    cp = load_model_spec("cellprofiler")
    started = 0
    for name, out_dir in runs:
        try:
            suite = load_suite(name)
            datasets = load_suite_datasets(suite, say=lambda *_: None, skip_missing=skip_missing, errors={})
            started += measure_suite_ahead([cp], suite.tasks, datasets, out_dir, suite.seeds)
        except Exception:  # only a head start is lost; the suite's own run reports the problem
            log.debug("measuring suite %s ahead failed", name, exc_info=True)
    return started
