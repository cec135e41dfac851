"""Crop boxes: grids that cover the field, and nucleus-centred windows that land on real nuclei."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from chadavit.data.crops import Crop, extract, find_nuclei, grid_crops, nucleus_crops


def test_grid_covers_the_field_without_overlap_when_it_can() -> None:
    crops = grid_crops(500, 300, 224)
    covered = np.zeros((500, 300), int)
    for c in crops:
        assert c.size == (224, 224) and c.y0 >= 0 and c.x0 >= 0 and c.y1 <= 500 and c.x1 <= 300
        covered[c.y0 : c.y1, c.x0 : c.x1] += 1
    assert covered.min() >= 1
    assert len(grid_crops(448, 448, 224)) == 4 and len(grid_crops(448, 448, 224, stride=112)) == 9


def test_small_fields_are_centred_and_zero_padded() -> None:
    (c,) = grid_crops(40, 50, 64)
    assert (c.y0, c.x0, c.y1, c.x1) == (-12, -7, 52, 57)
    field = np.ones((2, 40, 50), np.float32)
    out = extract(field, c)
    assert out.shape == (2, 64, 64) and out.sum() == 2 * 40 * 50 and out[:, 0].sum() == 0
    assert extract(field, Crop(0, 0, 10, 10)).base is not None  # inside the field: a view, no copy


def test_nucleus_crops_are_centred_on_real_nuclei(shared_dir: Path) -> None:
    root = shared_dir / "data" / "stardist_dsb2018_nuclei"
    img, mask = tifffile.imread(root / "img2d.tif"), tifffile.imread(root / "mask2d.tif")
    nuclei, labels = find_nuclei(img)
    n_true = len(np.unique(mask)) - 1
    assert 0.7 * n_true <= len(nuclei) <= 1.3 * n_true
    centres = [(int(round(n.y)), int(round(n.x))) for n in nuclei]
    on_nucleus = np.mean([mask[y, x] > 0 for y, x in centres])
    assert on_nucleus > 0.95
    # most annotated nuclei get a crop of their own
    assert len({mask[y, x] for y, x in centres} - {0}) > 0.75 * n_true
    crops = nucleus_crops(img, 64)
    assert len(crops) == len(nuclei)
    for c in crops:
        meta = dict(c.meta)
        assert c.size == (64, 64)
        assert abs((c.y0 + c.y1) / 2 - meta["NucleusY"]) <= 1 and abs((c.x0 + c.x1) / 2 - meta["NucleusX"]) <= 1
    assert len(nucleus_crops(img, 64, max_crops=10)) == 10


def test_no_nuclei_in_a_flat_or_empty_image() -> None:
    assert find_nuclei(np.zeros((64, 64), np.uint16))[0] == []
