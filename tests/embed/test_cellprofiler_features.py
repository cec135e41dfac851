"""``chadavit embed --features learned,cellprofiler``: one table, cp_ columns beside cls_/meanpatch_, error rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

pytest.importorskip("cp_measure", reason="cp_measure not installed (pip install 'chadavit[cellprofiler]')")

from chadavit.cli.main import main  # noqa: E402
from chadavit.embed import EmbedConfig, EmbedError, run_embed  # noqa: E402
from chadavit.embed.merge import merge_shards  # noqa: E402

KW = dict(pattern="{well}_s{site}_{channel}.tif", channel_map="w1=DNA,w2=Actin", progress=False, workers=1,
          model="random:chada_vit_nano", batch_size=8, crop_size=32)


def cfg(inp: Path, out: Path, **kw) -> EmbedConfig:  # noqa: ANN003
    return EmbedConfig(input=str(inp), out=str(out), **{**KW, **kw})


@pytest.fixture
def cell_folder(tmp_path: Path) -> Path:
    """Four 2-channel fields (wells A01..B02): nuclei (DNA, r 5) inside larger cell bodies (Actin, r 11)."""
    root = tmp_path / "cells"
    root.mkdir()
    yy, xx = np.mgrid[:96, :80]
    for i, well in enumerate(["A01", "A02", "B01", "B02"]):
        rng = np.random.default_rng(i)
        dna, act = rng.normal(200, 10, (2, 96, 80))
        for cy, cx in ((24, 20), (24, 58), (70, 40)):
            cy, cx = cy + rng.integers(-3, 4), cx + rng.integers(-3, 4)
            dna[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] += 3000
            act[(yy - cy) ** 2 + (xx - cx) ** 2 <= 121] += 1000 + 300 * i
        tifffile.imwrite(root / f"{well}_s1_w1.tif", dna.astype(np.uint16))
        tifffile.imwrite(root / f"{well}_s1_w2.tif", act.astype(np.uint16))
    return root


def groups(df: pd.DataFrame) -> list[str]:
    """The column groups in table order (by prefix)."""
    return list(dict.fromkeys(c.split("_", 1)[0] for c in df.columns))


def test_learned_and_cellprofiler_in_one_table_row_is_the_crops_nucleus(cell_folder: Path, tmp_path: Path,
                                                                         tiny_model) -> None:
    res = run_embed(cfg(cell_folder, tmp_path / "both.parquet", crops="nuclei", features="learned,cellprofiler"),
                    model=tiny_model)
    assert res.n_failed == 0
    df = pd.read_parquet(res.out)
    assert groups(df) == ["Metadata", "cls", "meanpatch", "chan", "cp"]
    assert {"cp_Nuclei_AreaShape_Area", "cp_Nuclei_Intensity_MeanIntensity_DNA", "cp_Cells_AreaShape_Area",
            "cp_Cytoplasm_Intensity_MeanIntensity_Actin", "cp_Cells_Correlation_Correlation_DNA_Actin"} <= set(df)
    assert len(df) == 12 and df.Metadata_CPError.isna().all()
    ok = df
    # the row measures the nucleus of its crop: the same area as the crop's nucleus
    np.testing.assert_allclose(ok.cp_Nuclei_AreaShape_Area, ok.Metadata_NucleusArea)
    assert (ok.cp_Cells_AreaShape_Area > 3 * ok.cp_Nuclei_AreaShape_Area).all()  # grown over Actin (r 11 vs 5)
    by_well = ok.groupby("Metadata_Well").cp_Cytoplasm_Intensity_MeanIntensity_Actin.mean()
    assert by_well.is_monotonic_increasing  # Actin brighter by well: the cytoplasm measures it
    only = run_embed(cfg(cell_folder, tmp_path / "cp.parquet", crops="nuclei", features="cellprofiler",
                         model=None))
    cp = pd.read_parquet(only.out)
    assert groups(cp) == ["Metadata", "cp"]
    pd.testing.assert_frame_equal(cp.filter(like="cp_"), df.filter(like="cp_"))


def test_full_crops_measure_the_object_nearest_the_centre_and_flat_crops_get_an_error_row(tmp_path: Path) -> None:
    root = tmp_path / "cells"
    root.mkdir()
    yy, xx = np.mgrid[:48, :48]
    for i, r in enumerate((5, 8, 11)):
        dna = np.where((yy - 24) ** 2 + (xx - 24) ** 2 <= r * r, 3000, 200).astype(np.uint16)
        dna[2:6, 2:6] = 3000  # a brighter neighbour in the corner: not the central object
        tifffile.imwrite(root / f"A0{i + 1}_s1_w1.tif", dna)
    tifffile.imwrite(root / "A09_s1_w1.tif", np.full((48, 48), 500, np.uint16))  # flat: nothing to segment
    res = run_embed(cfg(root, tmp_path / "full.parquet", crops="full", features="cellprofiler", model=None,
                        channel_map="w1=DNA"))
    df = pd.read_parquet(res.out).set_index("Metadata_Well")
    area = df["cp_Nuclei_AreaShape_Area"]
    assert area["A01"] < area["A02"] < area["A03"]
    assert area["A02"] == pytest.approx(np.pi * 64, rel=0.15)
    # the crop's background (ours): the pixels outside the central object and its neighbours, 200 / 65535
    bg = df.loc[["A01", "A02", "A03"], "cp_Background_Intensity_MedianIntensity_DNA"]
    np.testing.assert_allclose(bg, 200 / 65535)
    assert (df.loc[["A01", "A02", "A03"], "cp_Nuclei_Children_DNASpeckles_Count"] >= 0).all()  # measured, not NaN
    assert "no object in the crop" in df.loc["A09", "Metadata_CPError"]
    assert df.loc["A09"].filter(like="cp_").isna().all()  # never a row of zeros


def test_no_nuclear_stain_documented_choice_for_crops_and_error_for_nuclei(plate_folder: Path, tmp_path: Path) -> None:
    kw = dict(features="cellprofiler", model=None, channel_map="w1=GFP,w2=Actin")
    res = run_embed(cfg(plate_folder, tmp_path / "x.parquet", crops="full", **kw))
    df = pd.read_parquet(res.out)  # single-cell crops: the central object of the first channel, named Cells
    assert "cp_Cells_AreaShape_Area" in df and not df.filter(like="cp_Nuclei_").shape[1]
    assert df.Metadata_CPError.isna().all() and (df.cp_Cells_AreaShape_Area > 0).all()
    with pytest.raises(EmbedError, match="needs --nuclei-channel"):  # fields: no nuclei, no cells to measure
        run_embed(cfg(plate_folder, tmp_path / "n.parquet", crops="nuclei", **kw))
    with pytest.raises(EmbedError, match="--features takes a comma-separated list of learned, cls, meanpatch, "
                                         "per_channel, cellprofiler"):
        run_embed(cfg(plate_folder, tmp_path / "y.parquet", features="cellprofiler,pixels"))
    with pytest.raises(EmbedError, match="--model is required for learned features"):
        run_embed(cfg(plate_folder, tmp_path / "y.parquet", model=None))


def test_shards_merge_and_resume_keep_the_cp_columns(cell_folder: Path, tmp_path: Path) -> None:
    kw = dict(crops="nuclei", features="cellprofiler", model=None, part_size=1)
    whole = pd.read_parquet(run_embed(cfg(cell_folder, tmp_path / "whole.parquet", **kw)).out)
    outs = [run_embed(cfg(cell_folder, tmp_path / f"s{i}.parquet", shard=f"{i}/2", **kw)).out for i in (0, 1)]
    merge_shards(outs, tmp_path / "merged.parquet")
    merged = pd.read_parquet(tmp_path / "merged.parquet")
    assert list(merged.columns) == list(whole.columns)
    pd.testing.assert_frame_equal(merged.reset_index(drop=True), whole.reset_index(drop=True))


def test_cli_features_cellprofiler_without_a_model(plate_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.parquet"
    rc = main(["embed", str(plate_folder), "--out", str(out), "--features", "cellprofiler", "--crops", "nuclei",
               "--crop-size", "32", "--pattern", "{well}_s{site}_{channel}.tif", "--channel-map", "w1=DNA,w2=Actin",
               "--no-progress", "--workers", "1"])
    assert rc == 0 and pd.read_parquet(out).filter(like="cp_Cells_").shape[1] > 100
