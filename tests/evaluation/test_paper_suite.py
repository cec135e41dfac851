"""`chadavit eval --suite paper --set data_root=DIR` on stand-in trees of all six datasets writes a complete table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chadavit.cli.main import main
from chadavit.evaluation.suite import load_suite

from .standins import write_all


def test_paper_suite_has_table3_in_full():
    s = load_suite("paper", {"data_root": "/d"})
    t3 = {(t.dataset, t.protocol, t.features) for t in s.tasks if t.dataset in ("bbbc048", "cyclops")}
    assert {(d, p, f) for d in ("bbbc048", "cyclops") for p in ("linear", "knn") for f in ("cls", "all_tokens")} <= t3
    assert s.datasets["bbbc021"]["size"] == 224 and s.datasets["bray"]["path"] == "/d/bray"
    small = load_suite("paper", {"data_root": "/d", "image_size": "32", "epochs": "3"})
    assert small.datasets["nfkb"]["size"] == 32 and small.tasks[0].params["epochs"] == 3


def test_paper_suite_end_to_end_on_standins(tmp_path: Path, shared_dir: Path, capsys):
    root = tmp_path / "data"
    write_all(root, shared_dir)
    out = tmp_path / "paper"
    rc = main(["eval", "--suite", "paper", "--set", f"data_root={root}", "--set", "image_size=32", "--set", "crop=32",
               "--set", "cells_per_field=2", "--set", "epochs=5", "--set", "decoder_epochs=2", "--model", "pixels",
               "--seeds", "0",
               "--out", str(out), "--no-progress", "--no-figures", "--no-baselines"])
    assert rc == 0
    suite = load_suite("paper", {"data_root": str(root)})
    table = pd.read_csv(out / "table.csv", index_col=0)
    tasks_in_table = {c.split(" (")[0] for c in table.columns}
    assert tasks_in_table == {t.name for t in suite.tasks}  # every task of every dataset has a result
    assert table.notna().all().all()
    md = (out / "results.md").read_text()
    assert "## Failures" not in md and "Skipped" not in md
    assert "official ChAda-ViT split" in md and "MedMNIST official" in md and "fixed split by plate" in md
    assert "without a published MoA" in md
    summary = pd.read_csv(out / "summary.csv")
    moa = summary[summary.task == "BBBC021 MoA"].set_index("metric")["mean"]
    assert 8 <= moa["n_treatments_nsc"] <= 10 and moa["n_moas_nsc"] == 3 and moa["n_moas_nscb"] == 3  # 0.8 of cells


def test_paper_one_channel_vit_spec_concatenates_per_channel_latents():
    import numpy as np

    from chadavit.evaluation.data import EvalData
    from chadavit.evaluation.features import extract_features, load_model_spec

    small = "embed_dim=32,depth=1,num_heads=2,mlp_dim=64"
    imgs = [np.random.default_rng(i).integers(0, 255, (2, 32, 32), dtype=np.uint8) for i in range(3)]
    d = EvalData("two", imgs, [("GFP", "RFP")] * 3, pd.DataFrame({"label": [0, 1, 0]}))
    concat = load_model_spec(f"random:one_channel_vit_tiny,pooling=concat,{small}")
    mean = load_model_spec(f"random:one_channel_vit_tiny,pooling=mean,{small}")
    a = extract_features(concat, d, ("cls",), progress=False)["cls"]
    b = extract_features(mean, d, ("cls",), progress=False)["cls"]
    assert a.shape == (3, 64) and b.shape == (3, 32)  # C x D as in the paper; mean kept as the option
    assert np.allclose(a.reshape(3, 2, 32).mean(1), b, atol=1e-5)
