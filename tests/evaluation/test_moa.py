"""The standard MoA protocol: counts on the real BBBC021 metadata, per-plate DMSO normalisation, NSCB rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chadavit.evaluation.datasets.bbbc021 import read_metadata
from chadavit.evaluation.moa import (
    moa_retrieval,
    moa_scores,
    normalise_per_plate,
    single_batch_moas,
    treatment_profiles,
)


def test_bbbc021_counts_on_the_real_metadata(shared_dir: Path):
    meta = read_metadata(shared_dir / "data" / "eval_metadata" / "bbbc021")
    meta = meta[meta["moa"].notna()].reset_index(drop=True)  # annotated fields and DMSO, one "cell" per field
    x = np.random.default_rng(0).normal(size=(len(meta), 16)).astype(np.float32)
    r = moa_retrieval(x, meta, seed=0, cell_fraction=1.0, control="DMSO")
    assert (r["n_treatments_nsc"], r["n_compounds_nsc"], r["n_moas_nsc"]) == (103, 38, 12)
    assert (r["n_treatments_nscb"], r["n_moas_nscb"], r["n_queries_nscb"]) == (92, 10, 91)  # taxol 0.3: every week
    x_norm = normalise_per_plate(x, meta, "DMSO")
    _, table = treatment_profiles(x_norm, meta, ("compound", "concentration"), "DMSO")
    assert single_batch_moas(table) == {"Cholesterol-lowering", "Kinase inhibitors"}  # W9 only, W7 only
    # random features: scores near chance, and chance is reported beside them
    assert 0 < r["nsc_chance"] < 20 and 0 < r["nscb_chance"] < 20
    assert abs(r["nsc"] - r["nsc_chance"]) < 15


def test_per_plate_dmso_normalisation_removes_plate_offsets():
    rng = np.random.default_rng(1)
    rows, feats = [], []
    for plate, offset in (("p1", 0.0), ("p2", 50.0)):
        for cpd in ("DMSO", "DMSO", "DMSO", "a", "b"):
            rows.append({"compound": cpd, "plate": plate})
            feats.append(rng.normal(size=4) + offset)
    meta, x = pd.DataFrame(rows), np.array(feats)
    z = normalise_per_plate(x, meta, "DMSO")
    for plate in ("p1", "p2"):
        ctrl = z[(meta["plate"] == plate) & (meta["compound"] == "DMSO")]
        assert np.allclose(ctrl.mean(0), 0, atol=1e-9) and np.allclose(ctrl.std(0), 1)
    pooled = normalise_per_plate(x, meta.drop(columns="plate"), "DMSO")
    assert abs(pooled[meta["plate"] == "p2"].mean() - pooled[meta["plate"] == "p1"].mean()) > 1  # offset stays


def test_nscb_drops_single_batch_moas_and_counts():
    profiles = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1], [0, 0, 1], [0.1, 0, 0.9]], float)
    table = pd.DataFrame({"compound": list("abcdef"), "moa": ["m1", "m1", "m2", "m2", "m3", "m3"],
                          "batches": [frozenset({b}) for b in ("w1", "w2", "w1", "w2", "w3", "w3")]})
    r = moa_scores(profiles, table)
    assert r["nsc"] == 100.0 and r["n_moas_nsc"] == 3
    assert r["n_moas_nscb"] == 2 and r["n_treatments_nscb"] == 4  # m3 lives in w3 only: dropped
    assert r["nscb"] == 100.0 and r["n_queries_nscb"] == 4
    assert r["nsc_chance"] == pytest.approx(100 / 5)  # one same-MoA compound among the 5 others per query


def test_moa_needs_annotated_treatments():
    meta = pd.DataFrame({"compound": ["DMSO", "DMSO", "x"], "moa": ["DMSO", "DMSO", np.nan], "plate": ["p"] * 3})
    with pytest.raises(ValueError, match="at least 2 annotated treatments"):
        moa_retrieval(np.ones((3, 2)), meta, control="DMSO", cell_fraction=1.0)


def test_results_md_reports_moa_treatments_and_queries():
    import pandas as pd

    from chadavit.evaluation.tables import moa_counts_section

    summary = pd.DataFrame({"model": "m", "task": "MoA", "metric": ["nsc", "n_treatments_nsc", "n_queries_nsc",
                                                                    "n_treatments_nscb", "n_moas_nscb",
                                                                    "n_queries_nscb"],
                            "mean": [50.0, 103, 103, 92, 10, 91]})
    md = "\n".join(moa_counts_section(summary))
    assert "| MoA | 103 | 103 | 92 | 10 | 91 |" in md and "Ando et al. 2017" in md
    assert moa_counts_section(summary[summary.metric == "nsc"]) == []


def test_a_treatment_in_every_batch_is_not_an_nscb_query():
    import pandas as pd

    from chadavit.evaluation.moa import moa_scores

    table = pd.DataFrame({"compound": ["a", "b", "c", "d"], "moa": ["X", "X", "Y", "Y"],
                          "batches": [frozenset({"w1", "w2"}), frozenset({"w2"}), frozenset({"w1"}),
                                      frozenset({"w2"})]})
    r = moa_scores(np.eye(4), table)
    # "a" spans both weeks: every other treatment shares one with it -> no admissible neighbour, not a query
    assert r["n_treatments_nscb"] == 4 and r["n_queries_nscb"] == 3
