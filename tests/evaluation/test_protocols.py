"""Protocols on data whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from chadavit.evaluation import protocols as P
from chadavit.evaluation.data import EvalInputError
from chadavit.evaluation.reconstruction import ChannelDecoder, channel_reconstruction, decoder_param_count


def blobs(n_per: int = 40, k: int = 4, d: int = 16, sep: float = 6.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    y = np.repeat(np.arange(k), n_per)
    return (centres[y] + rng.normal(size=(len(y), d))).astype(np.float32), y


def test_split_is_stratified_seeded_and_disjoint():
    y = np.repeat(np.arange(3), 10)
    tr, te = P.train_test_split_indices(y, seed=0)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 30
    assert sorted(np.bincount(y[te]).tolist()) == [3, 3, 3]
    tr2, te2 = P.train_test_split_indices(y, seed=0)
    assert np.array_equal(te, te2)
    assert not np.array_equal(te, P.train_test_split_indices(y, seed=1)[1])
    # classes with a single member fall back to a plain random split
    tr3, te3 = P.train_test_split_indices(np.array([0, 1, 1, 1, 2, 2]), seed=0)
    assert len(tr3) + len(te3) == 6


def test_linear_probe_separable_and_shuffled():
    x, y = blobs()
    tr, te = P.train_test_split_indices(y, seed=0)
    assert P.linear_probe(x[tr], y[tr], x[te], y[te], seed=0)["top1"] > 97
    y_shuf = np.random.default_rng(1).permutation(y)
    accs = [P.linear_probe(x[tr], y_shuf[tr], x[te], y_shuf[te], seed=s)["top1"] for s in range(3)]
    assert np.mean(accs) < 50  # chance is 25 %


def test_linear_probe_seeds_change_and_reproduce():
    x, y = blobs(sep=0.6, seed=3)  # overlapping classes so the probe's init and order matter
    tr, te = P.train_test_split_indices(y, seed=0)
    cfg = P.ProbeConfig(epochs=5, batch_size=16)
    a = P.linear_probe(x[tr], y[tr], x[te], y[te], seed=0, cfg=cfg)
    b = P.linear_probe(x[tr], y[tr], x[te], y[te], seed=0, cfg=cfg)
    assert a == b
    others = [P.linear_probe(x[tr], y[tr], x[te], y[te], seed=s, cfg=cfg)["macro_f1"] for s in (1, 2, 3)]
    assert any(o != a["macro_f1"] for o in others)


def test_logistic_probe_converges_deterministically_and_picks_its_penalty():
    x, y = blobs(sep=0.6, seed=3)
    tr, te = P.train_test_split_indices(y, seed=0)
    a = P.linear_probe(x[tr], y[tr], x[te], y[te], seed=0, solver="logistic")
    assert a == P.linear_probe(x[tr], y[tr], x[te], y[te], seed=7, solver="logistic")  # no init, no data order
    assert a == P.linear_probe(x[tr].astype(np.float64), y[tr], x[te].astype(np.float64), y[te], solver="logistic")
    assert a["top1"] > 60  # chance is 25 %
    # 40 training cells, 400 columns of which 20 carry the class: the SGD head fits the noise, the penalised fit not
    rng = np.random.default_rng(0)
    cols = rng.normal(size=(80, 400)).astype(np.float32)
    lab = (rng.random(80) > 0.5).astype(int)
    cols[:, :20] += 1.5 * (lab[:, None] - 0.5)
    good = P.linear_probe(cols[:40], lab[:40], cols[40:], lab[40:], solver="logistic")["top1"]
    assert good > 85 and good > P.linear_probe(cols[:40], lab[:40], cols[40:], lab[40:], solver="sgd")["top1"] + 10
    assert P.linear_probe(cols[:40], rng.permutation(lab[:40]), cols[40:], lab[40:], solver="logistic")["top1"] < 75


def test_logistic_fit_in_the_training_row_space_is_the_same_fit():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    xtr, xte = rng.normal(size=(30, 200)), rng.normal(size=(10, 200))
    y = (xtr[:, 0] + 0.5 * rng.normal(size=30) > 0).astype(int)
    ztr, zte = P._training_row_space(xtr, xte)
    assert ztr.shape == (30, 30) and zte.shape == (10, 30)
    for c in (0.01, 1.0):  # same scores on new cells, whatever the penalty
        full = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(xtr, y).decision_function(xte)
        small = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(ztr, y).decision_function(zte)
        np.testing.assert_allclose(small, full, atol=1e-5)
    wide = rng.normal(size=(30, 10))
    assert P._training_row_space(wide, wide[:3])[0] is wide  # fewer columns than rows: unchanged


def test_balanced_logistic_probe_calls_the_rare_class():
    # 5 % positives, weakly separated: unweighted, the best-fitting penalty never calls them (top-1 = the share of
    # negatives, the all-negative macro F1); balanced, the rare class is called
    rng = np.random.default_rng(0)
    lab = (rng.random(600) < 0.05).astype(int)
    x = rng.normal(size=(600, 50)).astype(np.float32)
    x[:, :5] += 0.3 * lab[:, None]
    plain = P.linear_probe(x[:300], lab[:300], x[300:], lab[300:], solver="logistic")
    fair = P.linear_probe(x[:300], lab[:300], x[300:], lab[300:], solver="logistic", balanced=True)
    assert plain["top1"] == pytest.approx(100 * (1 - lab[300:].mean()))
    assert fair["top1"] < plain["top1"] and fair["macro_f1"] != plain["macro_f1"]
    with pytest.raises(EvalInputError, match="solver='logistic' only"):
        P.linear_probe(x[:300], lab[:300], x[300:], lab[300:], balanced=True)


def test_linear_probe_refuses_unknown_solver_and_one_class():
    x, y = blobs()
    with pytest.raises(EvalInputError, match="unknown linear-probe solver 'ridge'"):
        P.linear_probe(x, y, x, y, solver="ridge")
    with pytest.raises(EvalInputError, match="one class only"):
        P.linear_probe(x, np.zeros(len(x), int), x, y, solver="logistic")


def test_knn_separable_shuffled_and_weighting():
    x, y = blobs()
    tr, te = P.train_test_split_indices(y, seed=0)
    assert P.knn_classify(x[tr], y[tr], x[te], y[te], k=10)["top1"] > 97
    y_shuf = np.random.default_rng(2).permutation(y)
    assert P.knn_classify(x[tr], y_shuf[tr], x[te], y_shuf[te], k=10)["top1"] < 50
    # one very close neighbour of class 1 outvotes two farther class-0 neighbours at low temperature
    train = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]], np.float32)
    query = np.array([[1.0, 0.01]], np.float32)
    assert P.knn_classify(train, np.array([1, 0, 0]), query, np.array([1]), k=3, temperature=0.02)["top1"] == 100
    assert P.knn_classify(train, np.array([1, 0, 0]), query, np.array([1]), k=3, temperature=100.0)["top1"] == 0


def test_knn_standardise_puts_columns_of_different_units_on_one_scale():
    """Uninformative columns in large units (areas in pixels) set the cosine alone; standardised, the
    informative columns decide again."""
    x, y = blobs()
    noise = np.random.default_rng(5).normal(0.0, 1e5, size=(len(x), 8)).astype(np.float32)
    wide = np.concatenate([x, noise], 1)
    tr, te = P.train_test_split_indices(y, seed=0)
    assert P.knn_classify(wide[tr], y[tr], wide[te], y[te], k=10)["top1"] < 50
    assert P.knn_classify(wide[tr], y[tr], wide[te], y[te], k=10, standardise=True)["top1"] > 95


@pytest.mark.parametrize("solver", ["sgd", "ridge"])
def test_linear_regression_recovers_linear_target(solver):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = x @ rng.normal(size=8) + 0.05 * rng.normal(size=200) + 3.0
    tr, te = np.arange(150), np.arange(150, 200)
    m = P.linear_regression(x[tr], y[tr], x[te], y[te], seed=0, solver=solver)
    assert m["r2"] > 0.97 and m["pearson"] > 0.98 and m["mae"] < 0.35
    y_shuf = rng.permutation(y)
    assert P.linear_regression(x[tr], y_shuf[tr], x[te], y_shuf[te], seed=0, solver=solver)["r2"] < 0.15


def test_regression_metrics_values():
    m = P.regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m["mse"] == pytest.approx(1 / 3) and m["mae"] == pytest.approx(1 / 3)
    assert m["r2"] == pytest.approx(1 - (1 / 3) / np.var([1.0, 2.0, 4.0]))


def _moa_table() -> tuple[np.ndarray, pd.DataFrame]:
    # cpdA has two doses; its other dose is the closest profile but NSC must skip it
    feats = np.array([[1.0, 0.0, 0.0], [0.99, 0.05, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0], [0.0, 0.1, 0.99]])
    meta = pd.DataFrame({"compound": ["cpdA", "cpdA", "cpdB", "cpdC", "cpdD"],
                         "concentration": [1, 2, 1, 1, 1],
                         "moa": ["m1", "m1", "m1", "m2", "m2"],
                         "batch": ["w1", "w2", "w1", "w2", "w1"]})
    return feats, meta


def test_moa_nsc_excludes_same_compound():
    feats, meta = _moa_table()
    table = meta.assign(batches=[frozenset([b]) for b in meta["batch"]])
    res = P.moa_nn_accuracy(feats, table)
    assert res["nsc"] == 100.0  # every query finds a different compound of its own MoA
    # without the exclusion the query cpdA@1 would match cpdA@2 trivially; make the other-compound neighbour wrong
    table2 = table.assign(moa=["m1", "m1", "m2", "m2", "m2"])
    res2 = P.moa_nn_accuracy(feats, table2)
    # cpdA@1 and cpdA@2 may only retrieve cpdB (m2, wrong); cpdB retrieves cpdA (m1, wrong); C and D are right
    assert res2["nsc"] == pytest.approx(100 * 2 / 5)


def test_moa_nscb_excludes_same_batch():
    feats, meta = _moa_table()
    table = meta.assign(batches=[frozenset([b]) for b in meta["batch"]])
    res = P.moa_nn_accuracy(feats, table)
    # cpdC (w2) may only use w1 treatments of other compounds: A@1 (m1), B (m1), D (m2) -> D is nearest -> right;
    # cpdA@1 (w1) may use only C (w2, m2) -> wrong
    assert res["nscb"] < res["nsc"]


def test_moa_retrieval_aggregates_cells_and_seeds_subsample():
    rng = np.random.default_rng(0)
    rows, feats = [], []
    centres = {"m1": rng.normal(size=8) * 3, "m2": rng.normal(size=8) * 3}
    for c in range(6):
        moa = "m1" if c < 3 else "m2"
        for b in range(2):
            for _ in range(10):
                rows.append({"compound": f"c{c}", "moa": moa, "batch": f"b{b}"})
                feats.append(centres[moa] + rng.normal(size=8))
    meta, x = pd.DataFrame(rows), np.array(feats, np.float32)
    r0 = P.moa_retrieval(x, meta, seed=0, treatment_cols=("compound", "batch"))
    assert r0["nsc"] == 100.0 and r0["nscb"] == 100.0
    r_noise = P.moa_retrieval(rng.normal(size=x.shape).astype(np.float32), meta, seed=0,
                              treatment_cols=("compound", "batch"))
    assert r_noise["nsc"] < 100.0


def test_decoder_size_matches_paper_and_only_first_layer_depends_on_dim():
    assert decoder_param_count(192, 224) == 5_248_449  # "about 5.2 M parameters"
    d192, d576 = ChannelDecoder(192, 224), ChannelDecoder(576, 224)
    diff = sum(p.numel() for p in d576.parameters()) - sum(p.numel() for p in d192.parameters())
    assert diff == (576 - 192) * 768
    convs = [m for m in d192.modules() if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in d192.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 5 and len(fcs) == 2
    with torch.no_grad():
        out = d192(torch.randn(2, 192))
    assert out.shape == (2, 224, 224) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_channel_reconstruction_learns_a_predictable_channel():
    rng = np.random.default_rng(0)
    n, s = 120, 16
    z = rng.normal(size=(n, 4)).astype(np.float32)
    yy, xx = np.mgrid[:s, :s] / s
    # target brightness pattern is a linear function of the embedding
    t = np.clip(0.5 + 0.2 * (z[:, :1, None] * yy[None] + z[:, 1:2, None] * xx[None]), 0, 1).astype(np.float32)
    m, pred = channel_reconstruction(z[:90], t[:90], z[90:], t[90:], seed=0, epochs=60, width=0.25)
    assert pred.shape == (30, s, s)
    assert m["r2"] > 0.5


def test_knn_small_temperature_does_not_overflow():
    x, y = blobs()
    tr, te = P.train_test_split_indices(y, seed=0)
    assert P.knn_classify(x[tr], y[tr], x[te], y[te], k=20, temperature=0.001)["top1"] > 97


def test_linear_probe_multi_matches_single_probes():
    x, y = blobs(sep=1.0, seed=4)
    tr, te = P.train_test_split_indices(y, seed=0)
    half = len(te) // 2
    multi = P.linear_probe_multi(x[tr], y[tr], [(x[te[:half]], y[te[:half]]), (x[te], y[te])], seed=1)
    assert multi[1] == P.linear_probe(x[tr], y[tr], x[te], y[te], seed=1)
