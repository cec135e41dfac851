"""Every dataset adapter on a stand-in tree with the real names, folders and metadata (../shared) and small pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from chadavit.evaluation.adapters import LAYOUTS, load_dataset
from chadavit.evaluation.data import DatasetLayoutError, EvalData
from chadavit.evaluation.datasets.common import grouped_split
from chadavit.evaluation.protocols import split_from_column

from .standins import (
    BRAY_CHANNELS,
    write_bbbc021,
    write_bbbc048,
    write_bloodmnist,
    write_bray,
    write_cyclops,
    write_nfkb,
)


def _check(d: EvalData, n: int, channels: tuple[str, ...], label: str) -> None:
    assert isinstance(d, EvalData) and len(d) == n
    assert all(names == channels for names in d.channel_names)
    assert all(im.shape[0] == len(channels) for im in d.images)
    assert label in d.labels.columns


@pytest.mark.parametrize("size", [28, 64])
def test_bloodmnist_every_size_keeps_train_val_test(tmp_path: Path, size: int):
    f = write_bloodmnist(tmp_path, counts=(6, 2, 4), size=size)
    d = load_dataset("bloodmnist", path=tmp_path, image_size=size)
    _check(d, 12, ("R", "G", "B"), "label")
    assert d.images[0].shape == (3, size, size) and d.images[0].dtype == np.uint8
    assert d.labels["split"].value_counts().to_dict() == {"train": 6, "test": 4, "val": 2}
    tr, te = split_from_column(d.labels["split"])
    assert len(tr) == 6 and len(te) == 4  # val is not merged into train
    with np.load(f) as z:
        assert np.array_equal(d.images[0], np.moveaxis(z["train_images"][0], -1, 0))  # HWC -> CHW
        assert d.labels["label"].tolist()[:6] == z["train_labels"].ravel().tolist()
    assert "official" in d.info["split"]
    assert "split" not in load_dataset("bloodmnist", path=f, split="random").labels.columns


def test_bbbc048_cellcycle_folders_and_official_split(tmp_path: Path, shared_dir: Path):
    rows = write_bbbc048(tmp_path, shared_dir)
    d = load_dataset("bbbc048", path=tmp_path, size=32)
    _check(d, 18, ("Ch3", "Ch4", "Ch6"), "stage")
    assert set(d.labels["stage"]) == {"G1", "G2", "S"}  # classes mapped by folder name
    got = dict(zip(d.labels["id"], d.labels["split"]))
    want = {r["id"]: {"train": "train", "val": "test"}[r["part"]] for _, r in rows.iterrows() if r["part"] != "none"}
    assert got == want and "49999" not in got  # the cell in no split file is left out, and counted
    assert d.info["excluded"] == 1 and "1 cells in neither file" in d.info["split"]
    grouped = load_dataset("bbbc048", path=tmp_path, size=32, split="grouped")
    assert len(grouped) == 19 and set(grouped.labels["split"]) == {"train", "test"}
    assert "split" not in load_dataset("bbbc048", path=tmp_path, size=32, split="random").labels.columns


def test_cyclops_official_integer_ids_and_channel_order(tmp_path: Path, shared_dir: Path):
    rows = write_cyclops(tmp_path, shared_dir)
    d = load_dataset("cyclops", path=tmp_path, size=None)
    _check(d, len(rows), ("GFP", "RFP"), "localisation")
    got = dict(zip(zip(d.labels["localisation"], d.labels["id"]), d.labels["split"]))
    want = {(r["localisation"], r["id"]): {"train": "train", "val": "test"}[r["part"]] for _, r in rows.iterrows()}
    assert got == want  # official ids like 24370 match the files' <CLASS>_<id>
    r0 = rows.iloc[0]
    i = d.labels.index[(d.labels["id"] == r0["id"]) & (d.labels["localisation"] == r0["localisation"])][0]
    gfp = tifffile.imread(tmp_path / r0["localisation"] / f"{r0['localisation']}_{r0['id']}_gfp.tif")
    assert np.array_equal(d.images[i][0], gfp) and d.images[i].dtype == np.uint16  # GFP first, always


def test_cyclops_ids_outside_split_are_not_silently_training_data(tmp_path: Path, shared_dir: Path):
    (tmp_path / "ER").mkdir()
    for ch in ("gfp", "rfp"):
        tifffile.imwrite(tmp_path / "ER" / f"ER_999999_{ch}.tif", np.zeros((64, 64), np.uint16))
    with pytest.raises(DatasetLayoutError, match="official ChAda-ViT split"):
        load_dataset("cyclops", path=tmp_path)


def test_nfkb_target_csvs_and_identified_channels(tmp_path: Path, shared_dir: Path):
    rows = write_nfkb(tmp_path, shared_dir)
    d = load_dataset("nfkb", path=tmp_path, size=32)
    _check(d, len(rows), ("NF-kB", "blue"), "translocation")  # empty red plane dropped, green is NF-kB
    assert d.info["dropped_empty_planes"] == ["R"]
    assert d.labels["translocation"].tolist() == rows["ratio"].tolist()
    assert d.labels["split"].tolist() == ["train" if p == "train" else "test" for p in rows["part"]]
    grouped = load_dataset("nfkb", path=tmp_path, size=32, split="grouped")
    by_well = grouped.labels.groupby("well")["split"].nunique()
    assert (by_well == 1).all()  # no well on both sides
    (tmp_path / "256x256" / str(rows["cat"][0]) / rows["image_name"][0]).unlink()
    with pytest.raises(DatasetLayoutError, match=rows["image_name"][0]):
        load_dataset("nfkb", path=tmp_path)


def test_bbbc021_plain_unzip_layout_real_csv(tmp_path: Path, shared_dir: Path):
    fields = write_bbbc021(tmp_path, shared_dir)
    assert not (tmp_path / "Week1").exists() and (tmp_path / "Week1_22123").is_dir()
    d = load_dataset("bbbc021", path=tmp_path, crop=32, cells_per_field=2, size=32)
    _check(d, 2 * len(fields), ("DAPI", "Tubulin", "Actin"), "moa")
    assert set(d.labels["batch"]) == {p.split("_")[0] for p in fields["Image_Metadata_Plate_DAPI"]}
    assert "DMSO" in set(d.labels["compound"]) and d.labels["moa"].notna().all()
    assert all(int(im[0, 16, 16]) > 1000 for im in d.images)  # crops centred on DAPI nuclei
    assert (d.labels.groupby("plate")["split"].nunique() == 1).all()  # grouped split: no plate on both sides


def test_bbbc021_week_parent_layout_and_missing_file(tmp_path: Path, shared_dir: Path):
    fields = write_bbbc021(tmp_path, shared_dir)
    plate = fields["Image_Metadata_Plate_DAPI"][0]
    (tmp_path / plate.split("_")[0]).mkdir(exist_ok=True)
    (tmp_path / plate).rename(tmp_path / plate.split("_")[0] / plate)  # the CSV's own Week1/Week1_22123 also works
    assert len(load_dataset("bbbc021", path=tmp_path, crop=32, cells_per_field=1, size=None)) == len(fields)
    victim = tmp_path / plate.split("_")[0] / plate / fields["Image_FileName_Actin"][0]
    victim.unlink()
    with pytest.raises(DatasetLayoutError, match=victim.name):
        load_dataset("bbbc021", path=tmp_path, crop=32, cells_per_field=1)


def test_bray_plates_wells_sites_platemaps_and_moa(tmp_path: Path, shared_dir: Path):
    wells = write_bray(tmp_path, shared_dir)
    d = load_dataset("bray", path=tmp_path, crop=32, cells_per_field=2, size=None)
    n_annotated = len(wells) - 2  # one compound without an MoA per plate is left out
    _check(d, 2 * n_annotated, BRAY_CHANNELS, "moa")
    assert d.info["compounds_without_moa"] == 2 and d.info["sites_without_moa"] == 2
    assert "left out" in d.info["note"]
    assert d.labels["moa"].notna().all() and "DMSO" in set(d.labels["compound"])
    assert set(d.labels["batch"]) == set(wells["map"]) and set(d.labels["plate"]) == {"24277", "24278"}
    brd = d.labels.loc[d.labels["compound"] != "DMSO", "compound"]
    assert brd.str.fullmatch(r"BRD-[A-Z]\d{8}").all()  # 13-char ids from the plate maps
    full = load_dataset("bray", path=tmp_path, crop=32, cells_per_field=1, include_unannotated=True)
    assert full.labels["moa"].isna().sum() == 2


def test_grouped_split_is_fixed_and_disjoint():
    import pandas as pd

    g = pd.Series([f"p{i % 7}" for i in range(70)])
    a, b = grouped_split(g), grouped_split(g.sample(frac=1, random_state=1))
    assert a.tolist() == b.sort_index().tolist()
    assert (pd.DataFrame({"g": g, "s": a}).groupby("g")["s"].nunique() == 1).all()
    assert 1 <= a.eq("test").groupby(g).first().sum() <= 6


def test_deeploc_packaged_copy():
    d = load_dataset("deeploc_yeast")
    _check(d, 36, ("GFP", "brightfield"), "localisation")
    assert d.images[0].dtype == np.uint16 and d.images[0].shape == (2, 64, 64)
    assert d.labels["localisation"].nunique() == 9  # 11 classes, 2 empty in this test set


def test_deeploc_matches_shared_copy(shared_dir: Path):
    src = shared_dir / "data" / "deeploc_yeast_schuldiner_test"
    a, b = load_dataset("deeploc_yeast", path=src), load_dataset("deeploc_yeast")
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
    assert a.labels.equals(b.labels)


def test_generic_npz_and_max_images(tmp_path: Path):
    rng = np.random.default_rng(6)
    np.savez(tmp_path / "mine.npz", images=rng.integers(0, 255, (10, 2, 16, 16), dtype=np.uint8),
             labels=np.arange(10) % 2, channel_names=np.array(["a", "b"]))
    d = load_dataset("npz", path=tmp_path / "mine.npz", max_images=4)
    _check(d, 4, ("a", "b"), "label")
    assert d.fingerprint() == load_dataset("npz", path=tmp_path / "mine.npz", max_images=4).fingerprint()


@pytest.mark.parametrize("adapter", ["bloodmnist", "bbbc048", "cyclops", "nfkb", "bbbc021", "bray"])
def test_missing_dataset_error_shows_layout(tmp_path: Path, adapter: str):
    with pytest.raises(DatasetLayoutError) as err:
        load_dataset(adapter, path=tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "Expected layout" in msg
    assert LAYOUTS[adapter].splitlines()[0] in msg


def test_unknown_adapter():
    with pytest.raises(ValueError, match="unknown dataset adapter"):
        load_dataset("imagenet", path=".")
