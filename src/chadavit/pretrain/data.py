"""Resolving the training data of a config: dataset folders, the bundled demo crops, synthetic studies."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

from chadavit.data.dataset import ChannelDataset, DatasetError, open_dataset
from chadavit.pretrain.config import ConfigError, PretrainConfig, SyntheticConfig

BUILTIN_DEMO = "builtin:demo"


def builtin_demo_path() -> Path:
    """The real-image demo dataset shipped in the package (``chadavit/demo_data/real``)."""
    return Path(str(resources.files("chadavit") / "demo_data" / "real"))


def resolve_paths(cfg: PretrainConfig) -> list[Path]:
    """Dataset folders named by ``data.paths``; a missing one is an error before any work starts."""
    s = cfg.data.synthetic
    if not cfg.data.paths and s.studies <= 0 and not s.channel_sets:
        raise ConfigError("no training data: set data.paths (dataset folders) and/or data.synthetic.studies")
    out = []
    for p in cfg.data.paths:
        path = builtin_demo_path() if p == BUILTIN_DEMO else Path(p).expanduser()
        if not path.exists():
            raise DatasetError(f"data.paths: dataset {p!r} does not exist ({path})")
        if not (path / "dataset.json").is_file():
            raise DatasetError(f"data.paths: {path} is not a chadavit dataset (no dataset.json); build one with "
                               "`chadavit data import`")
        out.append(path)
    return out


def synthetic_dir(cfg: PretrainConfig) -> Path | None:
    s = cfg.data.synthetic
    if s.studies <= 0 and not s.channel_sets:
        return None
    spec = json.dumps({"studies": s.studies, "sets": s.channel_sets, "n": s.images_per_study, "size": s.size,
                       "seed": s.seed}, sort_keys=True)
    tag = hashlib.sha1(spec.encode()).hexdigest()[:10]
    return Path(cfg.train.out_dir) / "data" / f"synthetic-{tag}"


def ensure_synthetic(s: SyntheticConfig, path: Path) -> Path:
    """Generate the synthetic studies once (into a temporary folder renamed into place)."""
    from chadavit.data.synthetic import write_synthetic_dataset

    if (path / "dataset.json").is_file() and (path / "COMPLETE").is_file():
        return path
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    studies = [list(c) for c in s.channel_sets] if s.channel_sets else s.studies
    write_synthetic_dataset(tmp, studies=studies, images_per_study=s.images_per_study, size=s.size, seed=s.seed)
    (tmp / "COMPLETE").write_text("ok\n")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def open_all(paths: list[Path]) -> list[ChannelDataset]:
    out = []
    for p in paths:
        ds = open_dataset(p)
        if len(ds) == 0:
            raise DatasetError(f"{p}: dataset has no images")
        out.append(ds)
    return out


def cell_views(cfg: PretrainConfig, paths: list[Path], datasets: list[ChannelDataset]) -> list[ChannelDataset]:
    """``data.paths`` datasets replaced by their cached single-cell crops when ``data.cells.size`` > 0.

    The first call builds the cache (rank 0, before a barrier); later calls reuse it. Synthetic studies stay whole.
    """
    c = cfg.data.cells
    if c.size <= 0 or not paths:
        return datasets
    from chadavit.pretrain.cells import build_cell_crops, cell_crops_dir

    real = datasets[: len(paths)]
    out = cell_crops_dir(cfg.train.out_dir, paths, c)
    return [build_cell_crops(real, out, c), *datasets[len(paths):]]
