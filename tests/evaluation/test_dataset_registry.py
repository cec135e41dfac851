"""The evaluation datasets' registry: one module per dataset registers its catalogue entry, layout, loader, fetch,
check and manual steps, and everything else (CATALOG, ADAPTERS, LAYOUTS, fetch and check) is read from it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from chadavit.errors import ChadavitError
from chadavit.evaluation.data import DatasetLayoutError
from chadavit.evaluation.datasets import ADAPTERS, CATALOG, LAYOUTS, PAPER_DATASETS
from chadavit.evaluation.datasets import registry as R
from chadavit.evaluation.datasets.checking import check
from chadavit.evaluation.datasets.fetching import Fetch, fetch, manual_steps

PAPER = ("bbbc021", "bbbc048", "bloodmnist", "bray", "cyclops", "nfkb")


def test_the_registry_holds_the_six_paper_datasets_each_complete():
    assert sorted(PAPER_DATASETS) == sorted(PAPER)
    for name in PAPER:
        d = PAPER_DATASETS[name]
        module = importlib.import_module(f"chadavit.evaluation.datasets.{name}")
        assert d is module.DATASET and d.name == name and d.info.name == name
        assert d.info.title and d.info.source and d.info.licence and d.info.citation
        assert d.layout == module.LAYOUT and d.layout.strip()
        assert d.load is getattr(module, f"load_{name}")
        assert d.fetch is getattr(module, f"fetch_{name}")
        assert d.check is getattr(module, f"check_{name}")
        if "manual" in d.info.fetch or name == "bray":  # bray: images by hand unless plates are given
            assert d.manual and "{target}" in d.manual, name


def test_catalog_adapters_and_layouts_are_read_from_the_registry():
    assert list(CATALOG) == list(PAPER_DATASETS)
    for name, d in PAPER_DATASETS.items():
        assert CATALOG[name] is d.info and ADAPTERS[name] is d.load and LAYOUTS[name] == d.layout
    assert {"deeploc_yeast", "npz", "synthetic", "real"} <= set(ADAPTERS)  # the non-paper loaders stay


def test_manual_steps_name_the_target_folder():
    text = manual_steps("cyclops", "/data/cyclops")
    assert "/data/cyclops" in text and "{target}" not in text and "chadavit datasets check cyclops" in text
    assert manual_steps("bloodmnist", "/x") == ""  # fetched automatically: no manual steps


def test_unknown_names_and_double_registration_are_refused():
    with pytest.raises(ChadavitError, match="unknown dataset 'imagenet'; choose one of bbbc021"):
        R.get("imagenet")
    with pytest.raises(ValueError, match="'bbbc021' is registered twice"):
        R.register(PAPER_DATASETS["bbbc021"])
    assert PAPER_DATASETS["bbbc021"] is importlib.import_module("chadavit.evaluation.datasets.bbbc021").DATASET


def test_a_new_dataset_is_one_registration(tmp_path: Path, monkeypatch):
    """fetch and check dispatch through the registry: registering a record is all a new dataset needs."""
    seen: list[str] = []

    def fetch_toy(f: Fetch) -> None:
        (f.target / "x.txt").write_text("toy")
        seen.append(f.name)

    def check_toy(root: Path) -> str:
        if not (root / "x.txt").is_file():
            raise DatasetLayoutError(f"toy: {root / 'x.txt'} absent")
        return "1 file"

    monkeypatch.setattr(R, "PAPER_DATASETS", dict(R.PAPER_DATASETS))
    info = R.DatasetInfo("toy", "a toy", "nowhere", "1 file", "CC0", "none", "automatic")
    R.register(R.PaperDataset(info, "PATH/x.txt", lambda path: None, fetch_toy, check_toy))
    with pytest.raises(DatasetLayoutError, match="x.txt absent"):
        check("toy", tmp_path)
    target = fetch("toy", tmp_path, say=lambda s: None)
    assert seen == ["toy"] and target == tmp_path / "toy" and check("toy", target) == "1 file"
    assert (target / ".chadavit-fetch.json").is_file()
