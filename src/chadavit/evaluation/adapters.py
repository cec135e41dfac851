"""Compatibility import path: the adapters now live one module per dataset in :mod:`chadavit.evaluation.datasets`."""

from __future__ import annotations

from chadavit.evaluation.datasets import (
    ADAPTERS,
    LAYOUTS,
    crop_cells,
    load_bbbc021,
    load_bbbc048,
    load_bloodmnist,
    load_bray,
    load_cyclops,
    load_dataset,
    load_deeploc_yeast,
    load_nfkb,
    load_npz,
    load_synthetic,
)

__all__ = ["ADAPTERS", "LAYOUTS", "crop_cells", "load_bbbc021", "load_bbbc048", "load_bloodmnist", "load_bray",
           "load_cyclops", "load_dataset", "load_deeploc_yeast", "load_nfkb", "load_npz", "load_synthetic"]
