"""Issue 22 item 18: crops follow the scale the model was trained at (recorded in its config), and a nuclear
channel that is not a nuclear stain is said (a GFP-only stain gave 5,646 "nuclei" without a word)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chadavit.embed import EmbedConfig, run_embed


@pytest.fixture()
def model_trained_at_48(tmp_path: Path) -> Path:
    from chadavit.models import create_model, save_pretrained

    model = create_model("chada_vit_nano", depth=1, img_size=32, patch_size=16)
    model.config = model.config.replace(crop_size=48)
    return save_pretrained(model, tmp_path / "m")


def _image(folder: Path, name: str, seed: int = 0) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    img = np.zeros((96, 96), np.uint8)
    for y, x in rng.integers(10, 86, size=(6, 2)):
        img[y - 4 : y + 4, x - 4 : x + 4] = 200  # bright blobs: something to find
    Image.fromarray(img).save(folder / name)
    return folder / name


def _crop_sides(out: Path) -> set[int]:
    table = pd.read_parquet(out)
    rows = (table["Metadata_CropY1"] - table["Metadata_CropY0"]).tolist()
    cols = (table["Metadata_CropX1"] - table["Metadata_CropX0"]).tolist()
    return set(rows) | set(cols)


@pytest.mark.parametrize("crops", ["grid", "nuclei"])
def test_crops_default_to_the_training_scale(crops: str, model_trained_at_48: Path, tmp_path: Path) -> None:
    img = _image(tmp_path / "in", "DNA.png")
    res = run_embed(EmbedConfig(input=str(img), out=str(tmp_path / "a.parquet"), model=str(model_trained_at_48),
                                crops=crops, progress=False, workers=0))
    assert res.n_failed == 0 and _crop_sides(res.out) == {48}
    res = run_embed(EmbedConfig(input=str(img), out=str(tmp_path / "b.parquet"), model=str(model_trained_at_48),
                                crops=crops, crop_size=24, progress=False, workers=0))
    assert _crop_sides(res.out) == {24}  # --crop-size still wins


def test_model_without_a_recorded_scale_crops_at_its_input_size(tmp_path: Path) -> None:
    img = _image(tmp_path / "in", "x.png")
    res = run_embed(EmbedConfig(input=str(img), out=str(tmp_path / "a.parquet"),
                                model="random:chada_vit_nano,img_size=32,patch_size=16,depth=1", progress=False,
                                workers=0))
    assert _crop_sides(res.out) == {32}


@pytest.mark.parametrize("channel, option, warned", [("GFP", None, True), ("GFP", "GFP", True),
                                                     ("DNA", None, False), ("DAPI", "DAPI", False)])
def test_non_nuclear_channel_for_nuclei_is_said(channel: str, option: str | None, warned: bool, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "in"
    _image(folder, "A01_s1.png")
    with caplog.at_level(logging.WARNING, logger="chadavit"):
        run_embed(EmbedConfig(input=str(folder), out=str(tmp_path / "a.parquet"), crops="nuclei",
                              model="random:chada_vit_nano,img_size=32,patch_size=16,depth=1",
                              channel_map=f"ch0={channel}", nuclei_channel=option, progress=False, workers=0))
    said = [r.getMessage() for r in caplog.records if "not named like a nuclear stain" in r.getMessage()]
    assert bool(said) == warned, said
    if warned:
        assert channel in said[0] and "DAPI" in said[0]
