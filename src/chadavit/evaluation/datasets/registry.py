"""The registry of the paper's evaluation datasets: a leaf that only stores one record per dataset.

Each dataset module (``bbbc021.py``, ``bloodmnist.py``, ...) holds everything about its dataset: where it comes
from, its licence and citation (`DatasetInfo`), its expected layout, its loader, its fetch, its layout check and
its manual steps, and calls `register` once. The package face imports every dataset module, and everything else
(`CATALOG`, `ADAPTERS`, `LAYOUTS`, `fetching.fetch`, `checking.check`) is read from here, so imports run one way:
registry <- download/extract/fetching/checking <- dataset modules <- package face.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chadavit.errors import ChadavitError


class UnknownDatasetError(ChadavitError, KeyError):
    """The dataset name is not in the catalogue."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class DatasetInfo:
    """Where a dataset comes from, its licence and citation; its folder under ``${data_root}`` is its name
    (what ``chadavit eval --suite paper`` reads)."""

    name: str
    title: str
    source: str
    size: str
    licence: str
    citation: str
    fetch: str  # "automatic", "partly automatic" or "manual"


@dataclass(frozen=True)
class PaperDataset:
    """One evaluation dataset: its catalogue entry, expected layout, loader (returns an ``EvalData``), fetch
    (takes a ``fetching.Fetch``), layout check (a folder -> a one-line summary, or ``DatasetLayoutError``) and the
    manual steps printed where it cannot be fetched automatically (``{target}`` stands for its folder)."""

    info: DatasetInfo
    layout: str
    load: Callable[..., Any]
    fetch: Callable[[Any], None]
    check: Callable[[Path], str]
    manual: str | None = None

    @property
    def name(self) -> str:
        return self.info.name


PAPER_DATASETS: dict[str, PaperDataset] = {}


def register(dataset: PaperDataset) -> PaperDataset:
    """Add ``dataset`` under its name (once: a second registration of the same name is a programming error)."""
    if dataset.name in PAPER_DATASETS:
        raise ValueError(f"evaluation dataset {dataset.name!r} is registered twice")
    PAPER_DATASETS[dataset.name] = dataset
    return dataset


def get(name: str) -> PaperDataset:
    if name not in PAPER_DATASETS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; choose one of {', '.join(PAPER_DATASETS)}")
    return PAPER_DATASETS[name]
