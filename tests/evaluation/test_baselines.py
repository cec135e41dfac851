"""Baselines in every report: which are added, the gap to the best one, verdicts, single-seed and narrow output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from chadavit.evaluation.baselines import add_baselines, gap_table, verdicts
from chadavit.evaluation.features import load_model_spec
from chadavit.evaluation.tables import fmt, terminal_summary, write_tables
from chadavit.models.references.handcrafted import handcrafted_vector, raw_pixel_vector, shape_features


def _summary(rows: list[tuple[str, str, str, float]], n_seeds: int = 5) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "task": t, "metric": k, "mean": v, "std": 0.5, "n_seeds": n_seeds}
                         for m, t, k, v in rows])


SUMMARY = _summary([
    ("mine", "loc", "top1", 80.0), ("raw_pixels", "loc", "top1", 70.0), ("handcrafted", "loc", "top1", 75.0),
    ("mine", "area", "r2", 0.30), ("raw_pixels", "area", "r2", 0.50), ("handcrafted", "area", "r2", 0.10),
    ("mine", "rec", "mse", 0.02), ("raw_pixels", "rec", "mse", 0.01), ("handcrafted", "rec", "mse", 0.03),
])
PRIMARY = {"loc": ["top1"], "area": ["r2"], "rec": ["mse"]}


def test_gap_is_to_the_best_baseline_per_task_and_signed_better_positive():
    g = gap_table(SUMMARY, PRIMARY, ["raw_pixels", "handcrafted"]).set_index("task")
    assert g.loc["loc", "best_baseline"] == "handcrafted" and g.loc["loc", "gap"] == pytest.approx(5.0)
    assert g.loc["loc", "gap_unit"] == pytest.approx(0.05)
    assert g.loc["area", "best_baseline"] == "raw_pixels" and g.loc["area", "gap"] == pytest.approx(-0.2)
    # lower MSE is better: the best baseline is the lowest, and being worse gives a negative gap
    assert g.loc["rec", "best_baseline"] == "raw_pixels" and g.loc["rec", "gap"] == pytest.approx(-0.01)
    assert set(g["model"]) == {"mine"}  # baselines get no gap row


def test_verdict_says_plainly_whether_a_model_beats_the_best_baseline():
    v = verdicts(gap_table(SUMMARY, PRIMARY, ["raw_pixels", "handcrafted"]))["mine"]
    assert "beats the best baseline on 1 of 3 tasks only" in v and "area" in v
    win = _summary([("m", "t", "top1", 90.0), ("raw_pixels", "t", "top1", 50.0)])
    assert "BEATS the best baseline on every task" in verdicts(gap_table(win, {"t": ["top1"]}, ["raw_pixels"]))["m"]
    lose = _summary([("m", "t", "r2", 0.1), ("raw_pixels", "t", "r2", 0.4)])
    assert "does NOT beat" in verdicts(gap_table(lose, {"t": ["r2"]}, ["raw_pixels"]))["m"]


def test_single_seed_prints_no_spread(tmp_path: Path):
    assert fmt(71.234, 0.0, "top1", n_seeds=1) == "71.2"
    assert fmt(71.234, 1.5, "top1", n_seeds=5) == "71.2 ± 1.5"
    one = _summary([(m, t, k, v) for m, t, k, v in SUMMARY[["model", "task", "metric", "mean"]].itertuples(
        index=False)], n_seeds=1)
    meta = {"suite": "s", "seeds": [0], "baselines": ["raw_pixels", "handcrafted"]}
    write_tables(pd.DataFrame(), one, PRIMARY, meta, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "±" not in md and "One seed" in md
    assert "## Against the best baseline" in md and "beats the best baseline on 1 of 3" in md
    assert "| *best baseline* | handcrafted 75.0 | raw_pixels 0.500 | raw_pixels 0.0100 |" in md
    text = terminal_summary(one, PRIMARY, ["raw_pixels", "handcrafted"])
    assert "±" not in text and "mean over 1 seed;" in text


def test_terminal_summary_stays_narrow_with_many_tasks_and_long_names():
    rows = [(m, f"a rather long task name number {i}", "r2", 0.1 * i)
            for i in range(14) for m in ("ChAda-ViT nano pretrained on the demo data", "raw_pixels")]
    s = _summary(rows)
    prim = {f"a rather long task name number {i}": ["r2"] for i in range(14)}
    text = terminal_summary(s, prim, ["raw_pixels"], width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "T14 = a rather long task name number 13 (R²)" in text
    assert "* raw_pixels" in text


def test_baselines_added_beside_a_trained_model(tmp_path: Path):
    from chadavit.models import build_model, get_config, save_pretrained

    torch.manual_seed(0)
    model = build_model(get_config("chada_vit_nano", depth=1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # "trained": differs from random init
    save_pretrained(model, tmp_path / "trained")
    lm = load_model_spec(str(tmp_path / "trained"))
    models, base = add_baselines([lm, load_model_spec("pixels")])
    labels = [m.label for m in models]
    assert labels[:2] == ["trained", "pixels"]
    assert {"raw_pixels", "CellProfiler (cp_measure)", "random init (trained)", "pixels"} == set(base)
    twin = next(m for m in models if m.label == "random init (trained)")
    assert twin.model.config == lm.model.config  # same architecture and config
    assert twin.key.rsplit("-", 1)[-1] != lm.key.rsplit("-", 1)[-1]  # but other weights
    # asking again with the twin already present adds nothing twice
    again, base2 = add_baselines(models)
    assert len(again) == len(models) and set(base2) == set(base)


def test_handcrafted_and_raw_pixel_features_measure_what_they_claim():
    yy, xx = np.mgrid[:64, :64]
    disk = ((yy - 32) ** 2 + (xx - 32) ** 2 <= 10**2)
    img = np.where(disk, 200, 10).astype(np.uint8)[None]
    area = shape_features(disk)[0]
    assert area == disk.sum()
    v = handcrafted_vector(img)
    assert v[0] == pytest.approx(disk.sum(), rel=0.05)  # the central object's area, from the crop alone
    assert np.isfinite(v).all() and len(v) == 37
    two = handcrafted_vector(np.concatenate([img, img[:, ::-1]]))
    assert len(two) == 74
    r = raw_pixel_vector(np.stack([img[0], img[0] * 3]).astype(np.uint16)).reshape(2, 32, 32)
    assert np.allclose(r.mean((1, 2)), 0, atol=1e-6) and np.allclose(r.std((1, 2)), 1)
    assert np.allclose(r[0], r[1])  # per-crop, per-channel standardisation removes the scale


def test_a_random_init_saved_as_the_demo_does_is_recognised_as_the_twin(tmp_path: Path):
    from chadavit.models import build_model, get_config, load_pretrained, save_pretrained

    model = build_model(get_config("chada_vit_nano", depth=1))
    with torch.no_grad():
        next(iter(model.parameters())).add_(1.0)
    save_pretrained(model, tmp_path / "trained")
    config = load_pretrained(tmp_path / "trained").config  # as the demo: config first, then seed, then build
    torch.manual_seed(0)
    save_pretrained(build_model(config), tmp_path / "rand")
    models, base = add_baselines([load_model_spec(str(tmp_path / "trained")),
                                  load_model_spec(f"demo random={tmp_path / 'rand'}")])
    assert [m.label for m in models] == ["trained", "demo random", "raw_pixels", "CellProfiler (cp_measure)"]
    assert "demo random" in base and "trained" not in base


def test_mean_over_tasks_puts_percentages_and_r2_on_one_scale():
    from chadavit.evaluation.baselines import mean_scores

    m = mean_scores(SUMMARY, PRIMARY)
    assert m["mine"] == pytest.approx((0.80 + 0.30 - 0.02) / 3)
    assert m["raw_pixels"] == pytest.approx((0.70 + 0.50 - 0.01) / 3)
    text = terminal_summary(SUMMARY, PRIMARY, ["raw_pixels", "handcrafted"])
    assert "mean over tasks" in text and "mine 0.360" in text


def test_cellprofiler_baseline_measures_the_central_cell():
    pytest.importorskip("cp_measure", reason="cp_measure not installed (pip install 'chadavit[cellprofiler]')")
    from chadavit.measure import cellprofiler_columns
    from chadavit.models.references import CellProfilerEncoder

    yy, xx = np.mgrid[:64, :64]
    crops = []
    for r in (6, 9, 12):
        dna = np.where((yy - 32) ** 2 + (xx - 32) ** 2 <= r * r, 3000, 200).astype(np.uint16)
        body = np.where((yy - 32) ** 2 + (xx - 32) ** 2 <= (2 * r) ** 2, 1500, 200).astype(np.uint16)
        crops.append(np.stack([dna, body]))
    names = [("DNA", "CellBody")] * 3
    v = CellProfilerEncoder().vectors(crops, names)
    cols = cellprofiler_columns(names[0], ["Nuclei", "Cells", "Cytoplasm", "Image"])
    assert v.shape == (3, len(cols)) and np.isfinite(v).all()
    area = v[:, cols.index("cp_Nuclei_AreaShape_Area")]
    assert np.all(np.diff(area) > 0) and area[1] == pytest.approx(np.pi * 81, rel=0.15)
    cell = v[:, cols.index("cp_Cells_AreaShape_Area")]
    assert np.all(cell > 2.5 * area)  # the cell grown over CellBody is larger than its nucleus


def test_hybrid_is_added_next_to_each_trained_model_with_both_blocks_standardised(tmp_path: Path):
    pytest.importorskip("cp_measure", reason="cp_measure not installed (pip install 'chadavit[cellprofiler]')")
    from chadavit.evaluation.cellprofiler import hybrid_models
    from chadavit.evaluation.data import EvalData
    from chadavit.evaluation.features import extract_features
    from chadavit.models import build_model, get_config, save_pretrained
    from chadavit.models.references import HybridEncoder

    model = build_model(get_config("chada_vit_nano", depth=1))
    with torch.no_grad():
        next(iter(model.parameters())).add_(0.5)
    save_pretrained(model, tmp_path / "trained")
    models, base = add_baselines([load_model_spec(str(tmp_path / "trained"))])
    hybrids = hybrid_models(models, base)
    assert [h.label for h in hybrids] == ["CellProfiler + trained"]  # none for the baselines or random init
    enc = hybrids[0].model
    assert isinstance(enc, HybridEncoder)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    crops = [np.where((yy - 16) ** 2 + (xx - 16) ** 2 <= r * r, 3000, 200).astype(np.uint16)[None]
             + rng.integers(0, 50, (1, 32, 32)).astype(np.uint16) for r in (4, 6, 8, 10)]
    data = EvalData("crops", crops, [("DNA",)] * 4, pd.DataFrame(index=range(4)))
    v = extract_features(hybrids[0], data, ("cls",), cache_dir=tmp_path / "cache", progress=False)["cls"]
    width = model.config.embed_dim
    # read from the CellProfiler row's and the model's cached features: nothing measured twice
    cp_row = next(m for m in models if m.label == "CellProfiler (cp_measure)")
    assert list((tmp_path / "cache").glob(f"{cp_row.key}/*__cls.npy"))
    # the encoder itself gives the two blocks as measured, which the read-out standardises
    raw = enc(enc.make_batch(crops, [("DNA",)] * 4)).cls.numpy()
    from chadavit.models.references.hybrid import hybrid_features

    assert np.allclose(hybrid_features(raw[:, :-width], raw[:, -width:]), v, atol=1e-5)
    cp, learned = v[:, :-width], v[:, -width:]
    assert cp.shape[1] > 100 and np.isfinite(v).all()
    for block in (cp, learned):  # each block: features centred, total weight 1 per image on average
        assert np.allclose(block.mean(0), 0, atol=1e-5)
        assert (block ** 2).sum(1).mean() == pytest.approx(1.0, rel=0.2)
