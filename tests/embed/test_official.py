"""Embedding with official ChAda-ViT checkpoints reproduces the official model's outputs end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from chadavit.cli.main import main

FIX = "fixtures/official_chadavit"


@pytest.fixture
def official_images(shared_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The reference batch b0 (224 px uint8 images with 1, 3 and 10 channels) as multi-channel TIFF files."""
    ref = dict(np.load(shared_dir / FIX / "reference_io.npz"))
    planes, counts = ref["b0_pixels_uint8"], ref["b0_num_channels"].tolist()
    folder = tmp_path / "imgs"
    folder.mkdir()
    start = 0
    for i, c in enumerate(counts):
        tifffile.imwrite(folder / f"img{i}.tif", planes[start : start + c], photometric="minisblack")
        start += c
    return folder, ref


def cls_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_parquet(path).sort_values("Metadata_ImageIndex")
    return (df[[c for c in df if c.startswith("cls_")]].to_numpy(),
            df[[c for c in df if c.startswith("meanpatch_")]].to_numpy())


@pytest.mark.parametrize("form", ["official:{ckpt}", "official:{ckpt}:teacher", "{safetensors}"])
def test_official_checkpoints_match_the_reference(official_images, shared_dir: Path, tmp_path: Path,  # noqa: ANN001
                                                   form: str) -> None:
    folder, ref = official_images
    spec = form.format(ckpt=shared_dir / FIX / "official_training.ckpt",
                       safetensors=shared_dir / FIX / "official_backbone.safetensors")
    out = tmp_path / "o.parquet"
    rc = main(["embed", str(folder), "--model", spec, "--num-heads", "12", "--crops", "full", "--out", str(out),
               "--no-progress", "--batch-size", "2", "--precision", "fp32"])  # exact: fp32
    assert rc == 0
    cls, meanpatch = cls_of(out)
    want = ref["b0_teacher_cls"] if spec.endswith(":teacher") else ref["b0_student_cls"]
    np.testing.assert_allclose(cls, want, atol=1e-4)
    if not spec.endswith(":teacher"):
        tokens = ref["b0_student_patch_tokens"]
        sizes = [c * 196 for c in ref["b0_num_channels"].tolist()]
        means = np.stack([t.mean(0) for t in np.split(tokens, np.cumsum(sizes)[:-1])])
        np.testing.assert_allclose(meanpatch, means, atol=1e-4)
    df = pd.read_parquet(out)
    assert df.Metadata_Channels.tolist() == ["ch0", "ch0,ch1,ch2", ",".join(f"ch{k}" for k in range(10))]
