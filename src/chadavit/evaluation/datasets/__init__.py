"""Evaluation datasets, one module per benchmark. Each paper dataset's module (``bbbc021.py``, ...) holds its
catalogue entry, fetch, layout check, manual steps and loader, and registers them in `registry`; importing it
below is all it takes to add one. ``CATALOG``, ``ADAPTERS`` and ``LAYOUTS`` are read from the registry.

A loader reads the dataset as its public download lays it out and returns an `EvalData`. ``LAYOUTS`` holds each
expected layout (shown when a dataset is missing); loaders take ``size`` (resize to ``size x size``),
``max_images`` (a fixed, seeded subsample) and, for the paper's datasets, ``split`` (``official`` where one was
published, else a fixed ``grouped`` split; ``random`` per seed as option).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chadavit.evaluation.data import EvalData, EvalInputError

# the paper's datasets: importing a module registers it (adding a dataset = a module, and its name here)
from chadavit.evaluation.datasets import bbbc021, bbbc048, bloodmnist, bray, cyclops, generic, nfkb  # noqa: F401
from chadavit.evaluation.datasets.bbbc021 import load_bbbc021
from chadavit.evaluation.datasets.bbbc048 import load_bbbc048
from chadavit.evaluation.datasets.bloodmnist import load_bloodmnist
from chadavit.evaluation.datasets.bray import load_bray
from chadavit.evaluation.datasets.common import crop_cells
from chadavit.evaluation.datasets.cyclops import load_cyclops
from chadavit.evaluation.datasets.generic import load_deeploc_yeast, load_npz, load_synthetic
from chadavit.evaluation.datasets.nfkb import load_nfkb
from chadavit.evaluation.datasets.registry import PAPER_DATASETS, DatasetInfo, PaperDataset

CATALOG: dict[str, DatasetInfo] = {name: d.info for name, d in PAPER_DATASETS.items()}

LAYOUTS: dict[str, str] = {
    **{name: d.layout for name, d in PAPER_DATASETS.items()},
    "deeploc_yeast": generic.DEEPLOC_LAYOUT,
    "npz": generic.NPZ_LAYOUT,
}

ADAPTERS: dict[str, Callable[..., EvalData]] = {
    **{name: d.load for name, d in PAPER_DATASETS.items()},
    "deeploc_yeast": load_deeploc_yeast,
    "npz": load_npz,
    "synthetic": load_synthetic,
}


def load_real(**kwargs: Any) -> EvalData:
    """Suite `real`: single-cell crops of real fields with classically measured targets (evaluation/real/)."""
    from chadavit.evaluation.real.store import load_real as load

    return load(**kwargs)


ADAPTERS["real"] = load_real


def load_dataset(adapter: str, **kwargs: Any) -> EvalData:
    """Dispatch to an adapter by name (``ADAPTERS``)."""
    if adapter not in ADAPTERS:
        raise EvalInputError(f"unknown dataset adapter {adapter!r}; choose one of {', '.join(ADAPTERS)}")
    return ADAPTERS[adapter](**kwargs)


__all__ = ["ADAPTERS", "CATALOG", "LAYOUTS", "PAPER_DATASETS", "DatasetInfo", "PaperDataset", "crop_cells",
           "load_bbbc021", "load_bbbc048", "load_bloodmnist", "load_bray", "load_cyclops", "load_dataset",
           "load_deeploc_yeast", "load_nfkb", "load_npz", "load_synthetic"]
