"""Where ``chadavit idr build`` starts: the checks on an existing output folder and the plan it builds.

A re-run into the same folder builds the plan it started with (saved as ``OUT/plan.parquet`` with its
settings in ``OUT/plan.json``), since the server may have changed since; other settings are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chadavit.atomic import write_text_atomic
from chadavit.data.idr_client import IDRClient
from chadavit.idr.builder import BuildError
from chadavit.idr.plan import Plan, make_plan, read_table, write_table

if TYPE_CHECKING:
    import pandas as pd


def check_stored_size(out: Path, size: int) -> None:
    """Refuse to add images at ``size`` to a dataset whose images were stored at another size."""
    meta = out / "dataset.json"
    if meta.is_file():
        stored_size = json.loads(meta.read_text()).get("attrs", {}).get("size")
        if stored_size is not None and int(stored_size) != size:
            raise BuildError(f"{out} holds images stored at --size {stored_size}, not {size}; use another --out")


def check_flush(flush_every: int, flush_seconds: float) -> None:
    if flush_every < 1 or not flush_seconds > 0:
        raise BuildError(f"--flush-every ({flush_every}) and --flush-seconds ({flush_seconds}) must be positive")


def build_plan(out: Path, client: IDRClient, params: dict[str, Any], workers: int, progress: bool,
               on_new_plan: Callable[[Plan], None] = lambda plan: None,
               say: Callable[[str], None] = lambda message: None) -> pd.DataFrame:
    """The images to build into ``out``: the plan saved there by an earlier run, else a new one, saved.

    ``params`` holds ``server``, ``per_study``, ``seed``, ``unit`` and ``sample_type``; an earlier run's
    plan made with other values (the server aside) is refused.
    """
    saved = out / "plan.parquet"
    if saved.is_file():
        ppath = out / "plan.json"
        before = json.loads(ppath.read_text()) if ppath.is_file() else params
        changed = {k: (before.get(k), v) for k, v in params.items() if k != "server" and before.get(k) != v}
        if changed:
            raise BuildError(f"{out} was planned with different settings "
                             + ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in changed.items())
                             + "; use another --out, or pass --plan")
        say(f"resuming with the plan saved in {saved}")
        return read_table(saved)
    plan = make_plan(client, params["per_study"], params["seed"], params["unit"], params["sample_type"],
                     max(workers, 2), progress=progress)
    on_new_plan(plan)
    out.mkdir(parents=True, exist_ok=True)
    write_table(plan.images, saved)
    write_text_atomic(out / "plan.json", json.dumps(params, indent=1))
    return plan.images
