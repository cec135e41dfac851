"""Cells grown from nuclei by propagation over a cell-body channel: a dim cell keeps its cytoplasm, growth is
capped, no seed gives no cell."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cp_measure", reason="cp_measure not installed")

from chadavit.measure import measure_objects, propagate_cells, segment_field, to_unit  # noqa: E402


def dim_and_bright_cells(shape: tuple[int, int] = (80, 160)) -> tuple[np.ndarray, np.ndarray]:
    """DNA: two nuclei (r 6); Body: a bright cell (r 16) and a dim one (r 16, a fifth as bright), 16-bit."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dna = rng.normal(200, 10, shape)
    body = rng.normal(200, 10, shape)
    for (cy, cx), gain in (((40, 40), 4000.0), ((40, 120), 800.0)):
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        dna[d2 <= 36] += 3000
        body[d2 <= 256] += gain
    return np.stack([dna, body]).clip(0, 65535).astype(np.uint16), np.array([[40, 40], [40, 120]])


def test_a_dim_cell_keeps_its_cytoplasm_and_growth_is_capped() -> None:
    img = to_unit(dim_and_bright_cells()[0])
    named = segment_field(img, ["DNA", "CellBody"]).named()
    nuc, cells, cyto = named["Nuclei"], named["Cells"], named["Cytoplasm"]
    assert sorted(np.unique(nuc[nuc > 0])) == [1, 2]
    for k in (1, 2):  # both cells (r 16 around r 6 nuclei) get most of their body, the dim one included
        assert (cyto == k).sum() > 0.7 * (np.pi * (16**2 - 6**2))
        assert (cells == k).sum() < 1.2 * np.pi * 16**2  # and no more than their body
    df, reasons = measure_objects(img, ["DNA", "CellBody"], named)
    assert reasons == {} and df.filter(like="cp_Cytoplasm_").notna().any(axis=1).all()
    # the cap: a flat bright cell-body channel would otherwise give the whole field to the two nuclei
    flat = np.ones(nuc.shape)
    flat[0, 0] = 0.0
    grown = propagate_cells(nuc, flat, max_distance=5)
    assert (grown > 0).sum() < ((nuc > 0).sum() + 2 * np.pi * 11**2)
    assert np.all(grown[nuc > 0] == nuc[nuc > 0])


def test_no_seed_gives_no_cell() -> None:
    assert not propagate_cells(np.zeros((20, 20), np.int32), np.random.default_rng(0).random((20, 20))).any()
