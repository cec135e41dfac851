"""copairs mAP on profiles whose answer is known: perfect replicates give 1, shuffled labels give the null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("copairs", reason="needs the profiling extra: pip install 'chadavit[profiling]'")

from chadavit.profiling import ProfileError, map_scores  # noqa: E402


def profiles(n_treat=8, n_rep=4, n_ctrl=6, dim=32, noise=0.01, seed=0, moa_size=2) -> pd.DataFrame:
    """Treatments around distinct random centres; compounds of one MoA share a centre (plus a small offset)."""
    rng = np.random.default_rng(seed)
    moa_centres = rng.normal(size=(n_treat // moa_size, dim))
    rows, feats = [], []
    for t in range(n_treat):
        centre = moa_centres[t // moa_size] + 0.2 * rng.normal(size=dim)
        for r in range(n_rep):
            rows.append({"Metadata_Compound": f"cpd{t}", "Metadata_Concentration": "1.0",
                         "Metadata_MoA": f"moa{t // moa_size}", "Metadata_Well": f"w{t}_{r}"})
            feats.append(centre + noise * rng.normal(size=dim))
    for r in range(n_ctrl):
        rows.append({"Metadata_Compound": "DMSO", "Metadata_Concentration": "0", "Metadata_MoA": None,
                     "Metadata_Well": f"ctrl{r}"})
        feats.append(rng.normal(size=dim))
    df = pd.DataFrame(rows)
    return pd.concat([df, pd.DataFrame(np.array(feats), columns=[f"cls_{j}" for j in range(dim)])], axis=1)


BY = ["Metadata_Compound", "Metadata_Concentration"]


def test_perfect_replicates_and_moas_score_one_and_are_all_retrieved():
    res = map_scores(profiles(), BY, control="DMSO", moa_col="Metadata_MoA", null_size=2000)
    rep = res.replicate
    assert list(rep["Metadata_Compound"]) == [f"cpd{t}" for t in range(8)]  # DMSO is never a query
    np.testing.assert_allclose(rep["mean_average_precision"], 1.0)
    assert rep["retrieved"].all() and (rep["corrected_p_value"] < 0.01).all()
    assert res.summary["replicate_map"] == pytest.approx(1.0) and res.summary["replicate_fraction_retrieved"] == 1.0
    np.testing.assert_allclose(res.moa["mean_average_precision"], 1.0)
    assert res.summary["moa_groups"] == 4 and res.summary["moa_fraction_retrieved"] == 1.0


def _random_ap(n_pos: int, n_total: int, rng: np.random.Generator, n: int = 4000) -> float:
    aps = []
    for _ in range(n):
        hits = np.zeros(n_total, bool)
        hits[rng.choice(n_total, n_pos, replace=False)] = True
        ranks = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, n_pos + 1) / ranks))
    return float(np.mean(aps))


def test_shuffled_labels_give_the_null():
    df = profiles(n_treat=12, n_rep=4, n_ctrl=0, noise=1.0, seed=1)
    rng = np.random.default_rng(2)
    df["Metadata_Compound"] = rng.permutation(df["Metadata_Compound"].to_numpy())
    df[[c for c in df.columns if c.startswith("cls_")]] = rng.normal(size=(len(df), 32))
    res = map_scores(df, BY, null_size=2000)
    expected = _random_ap(3, 47, rng)  # 3 replicates among 47 other profiles, ranked at random
    assert res.summary["replicate_map"] == pytest.approx(expected, abs=0.08)
    assert res.summary["replicate_fraction_retrieved"] <= 1 / 12
    assert (res.replicate["p_value"] > 0.001).all()


def test_moa_positives_must_be_other_compounds():
    # every MoA has one compound: no positive pair exists, which is an error, not a score
    with pytest.raises(ProfileError, match="cannot form pairs for .*Metadata_MoA"):
        map_scores(profiles(moa_size=1), BY, control="DMSO", moa_col="Metadata_MoA", null_size=100)


def test_missing_columns_are_named():
    with pytest.raises(ProfileError, match="Metadata_Dose"):
        map_scores(profiles(), ["Metadata_Dose"])


def test_missing_extra_names_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "copairs.map", None)  # import of a None entry raises ImportError
    with pytest.raises(ProfileError, match=r"pip install 'chadavit\[profiling\]'"):
        map_scores(profiles(), BY, null_size=10)


def test_feature_columns_chan_prefix_takes_every_per_channel_block():
    from chadavit.profiling.prepare import feature_columns

    cols = ["cls_0", "cls_1", "chan_DNA_0", "chan_DNA_1", "chan_my_stain_0", "meanpatch_0"]
    df = pd.DataFrame([[0.0] * len(cols)], columns=cols).assign(Metadata_Well="A01")
    assert feature_columns(df, "chan") == ["chan_DNA_0", "chan_DNA_1", "chan_my_stain_0"]
    assert feature_columns(df, "cls") == ["cls_0", "cls_1"]
