"""What every dataset adapter shares: the layout error, packaged metadata, splits, subsampling, cell crops."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.evaluation.data import DatasetLayoutError, EvalData, EvalInputError, resize_images

META_DIR = Path(__file__).resolve().parent / "meta"
SPLIT_MODES = ("official", "grouped", "random")


def layout_error(name: str, layout: str, path: Path, detail: str) -> DatasetLayoutError:
    """The error every adapter raises: the path, what is wrong, then the expected layout."""
    return DatasetLayoutError(f"{name} dataset not found or malformed at {path}: {detail}\nExpected layout:\n{layout}")


def check_split_mode(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise EvalInputError(f"{name}: unknown split {split!r}; choose one of {', '.join(allowed)}")


def grouped_split(groups: pd.Series, test_fraction: float = 0.3, salt: str = "chadavit") -> pd.Series:
    """A fixed ``train``/``test`` split where no group (field, well, plate) is on both sides.

    Groups are ordered by a hash of their name (independent of seeds, machines and row order) and the first
    ``round(n * test_fraction)`` (at least one, at most n - 1) go to test.
    """
    names = sorted({str(g) for g in groups})
    order = sorted(names, key=lambda g: hashlib.sha256(f"{salt}:{g}".encode()).hexdigest())
    k = min(max(1, int(round(len(order) * test_fraction))), max(len(order) - 1, 0)) if len(order) > 1 else 0
    test = set(order[:k])
    return groups.astype(str).map(lambda g: "test" if g in test else "train")


def finish(data: EvalData, size: int | None, max_images: int | None, seed: int = 0) -> EvalData:
    """Seeded subsample of ``max_images`` (quick runs), then resize to ``size x size``."""
    if max_images is not None and len(data) > max_images:
        rng = np.random.default_rng(seed)
        data = data.subset(np.sort(rng.choice(len(data), int(max_images), replace=False)))
    if size is not None:
        data.images = resize_images(data.images, int(size))
    return data


def read_official_split(csv: Path) -> pd.DataFrame:
    """A ChAda-ViT split file (``...,id,split``): train.csv -> train, val.csv (the paper's held-out set) -> test."""
    df = pd.read_csv(csv, dtype={"id": str})
    df["split"] = df["split"].map({"train": "train", "val": "test"})
    return df


def apply_split(table: pd.DataFrame, split: str, official: Callable[[], pd.DataFrame], keys: list[str],
                on_no_match: Callable[[], DatasetLayoutError]) -> tuple[pd.DataFrame, str, int]:
    """``table`` with a ``split`` column: the official files (cells in neither are left out and counted), a fixed
    split by cell id (``grouped``) or none (``random``, drawn per seed). Returns the table, how, and the count left
    out."""
    if split == "official":
        table = table.merge(official(), on=keys, how="left")
        excluded = int(table["split"].isna().sum())
        table = table[table["split"].notna()].reset_index(drop=True)
        if table.empty:
            raise on_no_match()
        how = "official ChAda-ViT split (train.csv -> train, val.csv -> test)"
        return table, how + (f"; {excluded:,} cells in neither file left out" if excluded else ""), excluded
    if split == "grouped":
        table["split"] = grouped_split(table["id"])
        return table, "fixed split by cell id (30 % test)", 0
    return table, "random per seed (stratified)", 0


def split_note(labels: pd.DataFrame, how: str) -> str:
    """``how`` plus the per-split counts, for the report."""
    if "split" not in labels.columns:
        return how
    counts = labels["split"].value_counts()
    return how + " (" + ", ".join(f"{k} {int(counts[k]):,}" for k in ("train", "val", "test") if k in counts) + ")"


def crop_cells(field: np.ndarray, crop: int, max_cells: int, nucleus_channel: int = 0,
               min_area: int = 30) -> list[np.ndarray]:
    """Single-cell crops ``(C, crop, crop)`` centred on Otsu-thresholded nuclei (largest first)."""
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label, regionprops

    dna = gaussian(field[nucleus_channel].astype(np.float32), sigma=2)
    if float(dna.max()) <= float(dna.min()):
        return []
    mask = dna > threshold_otsu(dna)
    props = sorted((r for r in regionprops(label(mask)) if r.area >= min_area), key=lambda r: -r.area)
    h, w = field.shape[1:]
    half = crop // 2
    out = []
    for r in props:
        cy, cx = (int(round(v)) for v in r.centroid)
        y0, x0 = min(max(cy - half, 0), max(h - crop, 0)), min(max(cx - half, 0), max(w - crop, 0))
        c = field[:, y0 : y0 + crop, x0 : x0 + crop]
        if c.shape[1:] == (crop, crop):
            out.append(np.ascontiguousarray(c))
        if len(out) >= max_cells:
            break
    return out
