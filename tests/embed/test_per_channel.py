"""Per-channel columns of ``chadavit embed``: ``chan_<name>_<j>`` is the mean patch token of that channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from chadavit import ChannelBatch
from chadavit.embed import EmbedError, run_embed

from .conftest import blobs
from .test_run import cfg, features


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """A 2-channel and a 1-channel image (multi-plane TIFFs), 64x64 so one crop is the whole field."""
    root = tmp_path / "mixed"
    root.mkdir()
    tifffile.imwrite(root / "a.tif", np.stack([blobs(64, 64, 5, 1), blobs(64, 64, 2, 2)]), photometric="minisblack")
    tifffile.imwrite(root / "b.tif", blobs(64, 64, 4, 3)[None], photometric="minisblack")
    return root


def test_chan_columns_are_each_channels_mean_patch_token_and_nan_where_absent(mixed_folder: Path, tmp_path: Path,
                                                                             tiny_model) -> None:
    res = run_embed(cfg(mixed_folder, tmp_path / "m.parquet", input_format="files", channel_map="ch0=DNA,ch1=Actin",
                        crops="full"), model=tiny_model)
    df = pd.read_parquet(res.out).sort_values("Metadata_ImageId")
    d = tiny_model.config.embed_dim
    assert [c for c in df.columns if c.startswith("chan_")] == [f"chan_{c}_{j}" for c in ("DNA", "Actin")
                                                                  for j in range(d)]
    a, b = df.iloc[0], df.iloc[1]
    assert a.Metadata_Channels == "DNA,Actin" and b.Metadata_Channels == "DNA"
    assert np.isnan(b[[f"chan_Actin_{j}" for j in range(d)]].to_numpy(float)).all()
    assert np.isfinite(b[[f"chan_DNA_{j}" for j in range(d)]].to_numpy(float)).all()
    # the same numbers as the model's own output for that image
    img = tifffile.imread(mixed_folder / "a.tif")
    batch = ChannelBatch.from_images([img], channel_names=[("DNA", "Actin")], normalize=tiny_model.config.normalization)
    with torch.no_grad():
        ref = tiny_model(batch).per_channel_by_name()[0]
    for name in ("DNA", "Actin"):
        got = a[[f"chan_{name}_{j}" for j in range(d)]].to_numpy(np.float32)
        np.testing.assert_allclose(got, ref[name].numpy(), rtol=1e-3, atol=1e-4)
    # the mean of the per-channel vectors is the mean patch token (equal patch counts per channel)
    both = np.stack([a[[f"chan_{n}_{j}" for j in range(d)]].to_numpy(np.float32) for n in ("DNA", "Actin")])
    np.testing.assert_allclose(both.mean(0), features(df.iloc[:1], "meanpatch")[0], rtol=1e-4, atol=1e-5)


def test_features_option_picks_the_blocks_and_rejects_unknown_ones(plate_folder: Path, tmp_path: Path,
                                                                  tiny_model) -> None:
    pattern = "{well}_s{site}_w{channel}.tif"
    res = run_embed(cfg(plate_folder, tmp_path / "c.parquet", pattern=pattern, features="cls", per_image=True),
                    model=tiny_model)
    df = pd.read_parquet(res.out)
    feats = [c for c in df.columns if not c.startswith("Metadata_")]
    assert feats == [f"cls_{j}" for j in range(tiny_model.config.embed_dim)]
    res = run_embed(cfg(plate_folder, tmp_path / "p.parquet", pattern=pattern, features="per_channel",
                        per_image=True), model=tiny_model)
    cols = [c for c in pd.read_parquet(res.out).columns if not c.startswith("Metadata_")]
    assert {c.rsplit("_", 1)[0] for c in cols} == {"chan_1", "chan_2"}
    with pytest.raises(EmbedError, match="--features"):
        run_embed(cfg(plate_folder, tmp_path / "x.parquet", pattern=pattern, features="cls,tokens"), model=tiny_model)
    assert not (tmp_path / "x.parquet").exists()
