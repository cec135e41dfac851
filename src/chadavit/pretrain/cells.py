"""Single-cell views for pretraining: fields of view cut once into crops centred on nuclei, cached as a dataset.

Why: in a 512-1400 px field the cells are 10-40 px wide, so a random crop of the whole field resized to 64 px
is mostly background with cells of a few pixels, and DINO has nothing to match between views (measured:
the loss stays at ln(out_dim), see docs/pretraining.md). Cell-profiling self-supervision trains on
single-cell crops; we cut them with the same nucleus segmentation as ``chadavit embed --crops nuclei``
(:func:`chadavit.data.crops.nucleus_crops`). Fields without a nuclear channel are tiled instead.

The crops are written once into ``OUT/data/cells-<hash>`` (a normal chadavit dataset, raw dtype kept) and
reused on resume; the usual multi-crop loader then reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chadavit.data.dataset import ChannelDataset, DatasetError, DatasetWriter, open_dataset
from chadavit.data.crops import extract, find_nuclei, grid_crops, guess_nucleus_channel, nucleus_crops

log = logging.getLogger(__name__)



@dataclass
class CellCropConfig:
    """How fields become single-cell views (``size`` 0 = off: whole images are the views)."""

    size: int = 0  # crop side in pixels of the original field (tiles; nuclei when `diameters` is 0)
    diameters: float = 0.0  # > 0: nucleus crops are this many median nucleus diameters wide (per field)
    min_area: int = 30  # smallest nucleus kept (pixels)
    max_per_image: int = 200  # at most this many crops per field (evenly spread over the nuclei found)
    max_tiles_per_image: int = 16  # tiles of a field without nuclear channel (evenly spread)
    tile_fallback: bool = True  # fields without a nuclear channel are tiled at `size`
    min_field: int = 0  # images smaller than this on both sides are kept whole (already cell crops); 0 = 2 x size



def cell_crops_dir(out_dir: str | Path, paths: Sequence[Path], cfg: CellCropConfig) -> Path:
    spec = json.dumps({"paths": [str(p.resolve()) for p in paths], "cfg": cfg.__dict__}, sort_keys=True)
    return Path(out_dir) / "data" / f"cells-{hashlib.sha1(spec.encode()).hexdigest()[:10]}"


def _crops_of(field: np.ndarray, names: Sequence[str], cfg: CellCropConfig) -> tuple[list[np.ndarray], str]:
    h, w = field.shape[-2:]
    min_field = cfg.min_field or 2 * cfg.size
    if h < min_field and w < min_field:
        return [field], "whole"
    k = guess_nucleus_channel(names)
    if k is not None:
        side = cfg.size
        if cfg.diameters > 0:
            nuclei, _ = find_nuclei(field[k], min_area=cfg.min_area)
            if nuclei:
                diameter = 2 * math.sqrt(float(np.median([n.area for n in nuclei])) / math.pi)
                side = int(np.clip(round(cfg.diameters * diameter), cfg.size // 2, cfg.size * 4))
        crops = nucleus_crops(field[k], side, min_area=cfg.min_area, max_crops=cfg.max_per_image)
        if crops:
            return [extract(field, c) for c in crops], "nuclei"
    if not cfg.tile_fallback:
        return [], "none"
    tiles = grid_crops(h, w, cfg.size)
    if len(tiles) > cfg.max_tiles_per_image:
        idx = np.unique(np.linspace(0, len(tiles) - 1, cfg.max_tiles_per_image).round().astype(int))
        tiles = [tiles[i] for i in idx]
    return [extract(field, c) for c in tiles], "tiles"


def build_cell_crops(datasets: Sequence[ChannelDataset], out: Path, cfg: CellCropConfig) -> ChannelDataset:
    """Cut every field of ``datasets`` into single-cell crops (once; a finished cache is reused)."""
    if (out / "COMPLETE").is_file():
        return open_dataset(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {"nuclei": 0, "tiles": 0, "whole": 0, "none": 0}
    n_crops = 0
    with DatasetWriter(tmp, flush_every=1024, attrs={"cell_crops": cfg.__dict__}) as w:
        for ds in datasets:
            for i in range(len(ds)):
                row = ds.manifest.iloc[i]
                names = ds.channel_names(i)
                try:
                    field = ds.read(i)
                except Exception as exc:  # noqa: BLE001 - one bad field never stops the cache
                    log.warning("cell crops: skipped unreadable image %s: %s", row["image_id"], exc)
                    continue
                crops, how = _crops_of(field, names, cfg)
                counts[how] += 1
                for j, crop in enumerate(crops):
                    w.add(crop, f"{row['image_id']}#{j}", names, source=str(row.get("source", "")),
                          field_id=str(row["image_id"]))
                    n_crops += 1
    if n_crops == 0:
        raise DatasetError(f"cell crops: no crops could be cut from {sum(len(d) for d in datasets)} images "
                           "(no nuclei found and tiling off); set data.cells.tile_fallback=true or data.cells.size=0")
    (tmp / "COMPLETE").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("cell crops: %d crops from %d fields with nuclei, %d tiled, %d kept whole (%s)", n_crops,
             counts["nuclei"], counts["tiles"], counts["whole"], out)
    return open_dataset(out)
