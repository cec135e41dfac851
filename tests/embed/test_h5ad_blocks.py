"""``--h5ad`` carries every feature group of the table: learned blocks and the CellProfiler columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chadavit.embed.output import write_h5ad

anndata = pytest.importorskip("anndata", reason="anndata (optional) not installed")


def _table(path: Path, learned: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"Metadata_ImageId": ["a", "a", "b"], "Metadata_CropIndex": [0, 1, 0],
                       "Metadata_Well": ["A01", "A01", "B02"]})
    if learned:
        for j in range(3):
            df[f"cls_{j}"] = rng.normal(size=3).astype(np.float32)
    df["cp_Nuclei_AreaShape_Area_DNA"] = [120.0, np.nan, 98.0]  # NaN: a cell that could not be measured
    df["cp_Cells_Intensity_MeanIntensity_Actin"] = [0.2, 0.3, 0.1]
    df.to_parquet(path)
    return df


def test_cellprofiler_columns_are_a_block_beside_the_learned_ones(tmp_path: Path) -> None:
    df = _table(tmp_path / "t.parquet", learned=True)
    ad = anndata.read_h5ad(write_h5ad(tmp_path / "t.parquet", tmp_path / "t.h5ad"))
    assert list(ad.var_names) == ["cls_0", "cls_1", "cls_2"]
    cp = [c for c in df.columns if c.startswith("cp_")]
    assert list(ad.uns["cellprofiler_columns"]) == cp
    np.testing.assert_array_equal(ad.obsm["X_cellprofiler"], df[cp].to_numpy(np.float32))  # NaN kept, never 0


def test_cellprofiler_only_table_names_its_columns(tmp_path: Path) -> None:
    df = _table(tmp_path / "cp.parquet", learned=False)
    ad = anndata.read_h5ad(write_h5ad(tmp_path / "cp.parquet", tmp_path / "cp.h5ad"))
    assert list(ad.var_names) == [c for c in df.columns if c.startswith("cp_")]
    assert ad.shape == (3, 2) and np.isnan(ad.X[1, 0])
