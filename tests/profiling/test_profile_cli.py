"""`chadavit profile` on the output of `chadavit embed`, and per-plate normalisation on known plate effects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("copairs", reason="needs the profiling extra: pip install 'chadavit[profiling]'")
pytest.importorskip("pycytominer", reason="needs the profiling extra: pip install 'chadavit[profiling]'")

from chadavit.cli.main import main as cli  # noqa: E402
from chadavit.profiling import aggregate_profiles, map_scores, normalize_profiles  # noqa: E402


def test_profile_runs_on_embed_output(tmp_path, capsys):
    import tifffile

    rng = np.random.default_rng(0)
    rows = []
    (tmp_path / "img").mkdir()
    for plate in ("P1", "P2"):
        for t, cpd in enumerate(("DMSO", "cpdA", "cpdB")):
            for r in range(3):
                well = f"{'ABC'[t]}{r + 1:02d}"
                name = f"img/{plate}_{well}.tif"
                img = rng.integers(0, 500, (2, 32, 32)).astype(np.uint16)
                img[t % 2, 8:24, 8:24] += 3000 * t  # a treatment-specific pattern
                tifffile.imwrite(tmp_path / name, img)
                rows.append({"path": name, "Metadata_Plate": plate, "Metadata_Well": well, "Metadata_Compound": cpd,
                             "Metadata_Concentration": "0" if cpd == "DMSO" else "10"})
    table = pd.DataFrame(rows)  # images carry plate and well; the plate map brings the treatments
    table[["path", "Metadata_Plate", "Metadata_Well"]].to_csv(tmp_path / "images.csv", index=False)
    table.drop(columns="path").rename(columns=lambda c: c.removeprefix("Metadata_")).to_csv(
        tmp_path / "platemap.csv", index=False)
    emb = tmp_path / "emb.parquet"
    assert cli(["embed", str(tmp_path / "images.csv"), "--model", "random:chada_vit_nano", "--crops", "grid",
                "--crop-size", "16", "--out", str(emb), "--workers", "0", "--no-progress"]) == 0
    assert len(pd.read_parquet(emb)) == 18 * 4  # four 16 px tiles per image, aggregated back to wells
    capsys.readouterr()
    assert cli(["profile", str(emb), "--by", "Compound,Concentration", "--control", "DMSO", "--null-size", "200",
                "--no-feature-select", "--platemap", str(tmp_path / "platemap.csv")]) == 0
    out = tmp_path / "emb.profile" / "learned"
    assert "learned       replicate mAP" in capsys.readouterr().out
    rep = pd.read_csv(out / "map_replicate.csv")
    assert sorted(rep["Metadata_Compound"]) == ["cpdA", "cpdB"]
    assert rep["n_profiles"].tolist() == [6, 6]  # 3 wells x 2 plates each
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["n_wells"] == 18 and summary["n_control_profiles"] == 6
    prof = pd.read_parquet(out / "profiles.parquet")
    ctrl = prof[prof["Metadata_Compound"] == "DMSO"].filter(like="cls_")
    np.testing.assert_allclose(ctrl.groupby(prof["Metadata_Plate"]).median().to_numpy(), 0, atol=1e-4)  # mad_robustize


def test_bad_by_column_is_one_clear_error(tmp_path, cli_error):
    df = pd.DataFrame({"Metadata_Well": ["A01", "A02"], "cls_0": [0.1, 0.2]})
    df.to_parquet(tmp_path / "e.parquet")
    assert "--by column 'Compound' not found" in cli_error(["profile", tmp_path / "e.parquet", "--by", "Compound"])


def test_per_plate_normalisation_removes_plate_effects():
    """Replicates sit on different plates, each plate shifted and scaled: raw mAP suffers, normalised is 1."""
    rng = np.random.default_rng(0)
    dim, rows, feats = 16, [], []
    centres = rng.normal(size=(6, dim))
    for p in range(3):
        shift, scale = 20 * rng.normal(size=dim), rng.uniform(0.5, 2, size=dim)
        for t in range(6):
            for w in range(2):
                rows.append({"Metadata_Plate": f"P{p}", "Metadata_Well": f"{p}{t}{w}", "Metadata_Compound": f"c{t}"})
                feats.append(shift + scale * (centres[t] + 0.05 * rng.normal(size=dim)))
        for w in range(6):
            rows.append({"Metadata_Plate": f"P{p}", "Metadata_Well": f"{p}c{w}", "Metadata_Compound": "DMSO"})
            feats.append(shift + scale * rng.normal(size=dim))
    df = pd.concat([pd.DataFrame(rows), pd.DataFrame(feats, columns=[f"cls_{j}" for j in range(dim)])], axis=1)
    feat_cols = [f"cls_{j}" for j in range(dim)]
    wells = aggregate_profiles(df, feat_cols)
    assert len(wells) == len(df)
    raw = map_scores(wells, ["Metadata_Compound"], features=feat_cols, control="DMSO", null_size=200)
    normed, kept = normalize_profiles(wells, feat_cols, control_col="Metadata_Compound", control="DMSO",
                                      feature_select=False, method="standardize")  # 6 controls: MAD is noisy
    good = map_scores(normed, ["Metadata_Compound"], features=kept, control="DMSO", null_size=200)
    assert good.summary["replicate_map"] > 0.95 > raw.summary["replicate_map"] + 0.2


def _wells_with_two_groups(rng: np.random.Generator) -> pd.DataFrame:
    """3 compounds x 4 wells + 4 DMSO wells per plate, 2 plates; cls_ carries the compound, cp_ is noise except
    one feature on the pycytominer blocklist (which must be dropped)."""
    rows = []
    centres = rng.normal(size=(3, 8))
    for plate in ("P1", "P2"):
        for t, cpd in enumerate(("DMSO", "a", "b", "c")):
            for w in range(4):
                r = {"Metadata_Plate": plate, "Metadata_Well": f"{'ABCD'[t]}{w:02d}", "Metadata_Compound": cpd}
                sig = centres[t - 1] if t else np.zeros(8)
                r.update({f"cls_{j}": sig[j] + 0.1 * rng.normal() for j in range(8)})
                r.update({f"cp_Cells_AreaShape_F{j}": rng.normal() for j in range(6)})
                r["cp_Nuclei_Correlation_Manders_AGP_DNA"] = 5 * (t > 0) + 0.01 * rng.normal()  # blocklisted
                rows.append(r)
    return pd.DataFrame(rows)


def test_profile_reports_every_feature_group_side_by_side(tmp_path):
    from chadavit.profiling import profile_embeddings

    _wells_with_two_groups(np.random.default_rng(0)).to_parquet(tmp_path / "e.parquet")
    out, summary = profile_embeddings(tmp_path / "e.parquet", by=["Compound"], control="DMSO", null_size=200,
                                      transform_method="pca")
    assert list(summary["groups"]) == ["learned", "cellprofiler", "hybrid"]
    g = {k: v["replicate_map"] for k, v in summary["groups"].items()}
    assert g["learned"] > 0.9 and g["cellprofiler"] < 0.6 and g["hybrid"] > g["cellprofiler"]
    table = pd.read_csv(out / "groups.csv")
    assert list(table.group) == ["learned", "cellprofiler", "hybrid"] and (out / "map_by_group.png").stat().st_size
    cp = pd.read_parquet(out / "cellprofiler" / "profiles.parquet")
    assert all(c.startswith("pca_") for c in cp.columns if not c.startswith("Metadata_"))
    _, plain = profile_embeddings(tmp_path / "e.parquet", by=["Compound"], control="DMSO", null_size=200,
                                  feature_prefix="cellprofiler", out_dir=tmp_path / "plain")
    kept = pd.read_parquet(tmp_path / "plain" / "cellprofiler" / "profiles.parquet").columns
    assert "cp_Nuclei_Correlation_Manders_AGP_DNA" not in kept  # pycytominer's default blocklist
    assert plain["groups"]["cellprofiler"]["replicate_map"] < 0.6


def test_spherize_whitens_the_controls_and_pca_keeps_99_percent():
    from chadavit.profiling.groups import transform

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(5, 5))
    x = rng.normal(size=(200, 5)) @ mix  # correlated features
    df = pd.DataFrame(x, columns=[f"cls_{j}" for j in range(5)]).assign(Metadata_Well=[f"W{i}" for i in range(200)])
    ctrl = np.arange(200) < 150
    out, names = transform(df, [f"cls_{j}" for j in range(5)], "spherize", ctrl)
    z = out[names].to_numpy()[ctrl]
    np.testing.assert_allclose(np.cov(z.T), np.eye(5), atol=1e-4)  # controls: identity covariance
    pca, pnames = transform(df, [f"cls_{j}" for j in range(5)], "pca")
    assert all(n.startswith("pca_") for n in pnames) and 1 <= len(pnames) <= 4 and "Metadata_Well" in pca
