"""What a suite run writes as it goes: each finished task's rows (so a rerun resumes) and dataset notes for the
report."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from chadavit.atomic import write_atomic
from chadavit.evaluation.data import EvalData
from chadavit.evaluation.features import LoadedModel

RESULT_COLUMNS = ["model", "task", "dataset", "protocol", "features", "seed", "metric", "value"]


def task_key(lm: LoadedModel, task: Any, data: EvalData, seeds: Sequence[int]) -> str:
    """Names a finished (model, task) result: changes with the weights, the task's settings, the seeds and
    the dataset's content, so a rerun resumes only what is still valid."""
    desc = json.dumps([lm.key, task.name, task.dataset, task.protocol, task.label, task.features, task.params,
                       list(seeds), data.fingerprint()], sort_keys=True, default=str)
    slug = "".join(c if c.isalnum() else "_" for c in f"{lm.label}__{task.name}")[:60]
    return f"{slug}__{hashlib.sha256(desc.encode()).hexdigest()[:12]}"


def save_task_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """One finished task's rows, written whole or not at all (tmp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: pd.DataFrame(rows, columns=RESULT_COLUMNS).to_csv(tmp, index=False))


def dataset_notes(datasets: dict[str, EvalData | None]) -> dict[str, dict[str, Any]]:
    """Per dataset: image count, split used and adapter notes (for the report)."""
    out = {}
    for name, d in datasets.items():
        if d is not None:
            out[name] = {"n": len(d), "split": str(d.info.get("split", "random per seed" if "split" not in
                                                               d.labels.columns else "fixed split column")),
                         "note": str(d.info.get("note", ""))}
    return out
