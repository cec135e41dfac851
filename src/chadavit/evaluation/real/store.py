"""Build, cache and load the `real` suite's crops and targets (adapter ``real``).

The crops are cut once from the raw fields under ``../shared/data`` (:mod:`chadavit.evaluation.real.sources`)
and stored as one ``.npz`` per task in a cache folder; a small derived copy of every task ships with the package
(``evaluation/data/real_cells_64.npz``, licences beside it), so the suite runs on a fresh clone. Rebuild the
bundled copy with ``python -m chadavit.evaluation.real.store SHARED_DATA_DIR``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.atomic import write_atomic
from chadavit.evaluation.data import DatasetLayoutError, EvalData
from chadavit.evaluation.real.sources import BUILDERS, CellSet, RealSourceMissing

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "real_cells_64.npz"


def _cache_dir() -> Path:
    return Path(os.environ.get("CHADAVIT_CACHE", Path.home() / ".cache" / "chadavit")) / "real"


def save_cellsets(sets: list[CellSet], path: Path) -> Path:
    """All tasks in one ``.npz`` (written to a temporary name, then renamed)."""
    arrays: dict[str, np.ndarray] = {}
    meta = {}
    for s in sets:
        arrays[f"{s.name}__crops"] = s.crops
        arrays[f"{s.name}__groups"] = s.groups.astype(str)
        for k, v in s.targets.items():
            arrays[f"{s.name}__t__{k}"] = v
        meta[s.name] = {"channels": list(s.channels), "targets": list(s.targets), "info": s.info}
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")
    return path


def load_cellset(path: Path, task: str) -> CellSet | None:
    """One task from a stored ``.npz``, or None when the file lacks it."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if task not in meta:
            return None
        m = meta[task]
        return CellSet(task, z[f"{task}__crops"], tuple(m["channels"]),
                       {k: z[f"{task}__t__{k}"] for k in m["targets"]}, z[f"{task}__groups"], m.get("info", {}))


def get_cellset(task: str, shared: str | os.PathLike[str] | None = None, size: int = 64) -> CellSet:
    """The bundled copy when it has ``task`` at this size, else the cache, else built from ``shared``."""
    if task not in BUILDERS:
        raise DatasetLayoutError(f"real: unknown task {task!r}; known: {', '.join(BUILDERS)}")
    if size == 64:
        s = load_cellset(BUNDLED, task)
        if s is not None:
            return s
    cached = _cache_dir() / f"{task}_{size}.npz"
    s = load_cellset(cached, task)
    if s is not None:
        return s
    root = Path(shared) if shared else None
    if root is None or not root.is_dir():
        raise DatasetLayoutError(f"real task {task}: not bundled and the raw images are absent "
                                 f"(shared data folder {root} not found; it holds cellprofiler_examples/ and "
                                 "stardist_dsb2018_nuclei/)")
    try:
        s = BUILDERS[task](root, size)
    except RealSourceMissing as exc:
        raise DatasetLayoutError(f"real task {task}: {exc}") from None
    save_cellsets([s], cached)
    return s


def load_real(task: str, target: str | None = None, shared: str | None = None, size: int = 64,
              max_images: int | None = None) -> EvalData:
    """Adapter ``real``: one task's crops as `EvalData`; labels hold every target and the split ``group``."""
    s = get_cellset(task, shared, size)
    if target is not None and target not in s.targets:
        raise DatasetLayoutError(f"real task {task}: no target {target!r}; has {list(s.targets)}")
    labels = pd.DataFrame({k: v for k, v in s.targets.items()})
    labels["group"] = s.groups
    data = EvalData(task, list(s.crops), [s.channels] * len(s.crops), labels, {"source": s.info.get("source", "")})
    if max_images is not None and len(data) > max_images:
        data = data.subset(np.sort(np.random.default_rng(0).choice(len(data), int(max_images), replace=False)))
    return data


def main(argv: list[str] | None = None) -> int:
    """Rebuild the bundled copy: ``python -m chadavit.evaluation.real.store SHARED_DATA_DIR [OUT.npz]``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(main.__doc__)
        return 2
    out = Path(argv[1]) if len(argv) > 1 else BUNDLED
    sets = []
    for name, build in BUILDERS.items():
        s = build(Path(argv[0]), 64)
        sets.append(s)
        desc = ", ".join(f"{k} mean {float(np.mean(v)):.3g}" for k, v in s.targets.items())
        print(f"{name}: {len(s.crops)} cells, {len(set(s.groups))} groups, channels {s.channels}; {desc}")
    save_cellsets(sets, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
