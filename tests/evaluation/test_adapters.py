"""Every dataset adapter on a tiny copy of its public layout written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from chadavit.evaluation.adapters import LAYOUTS, load_dataset
from chadavit.evaluation.data import DatasetLayoutError, EvalData


def _cell_field(rng: np.random.Generator, n_channels: int, size: int = 128, n_nuclei: int = 3) -> np.ndarray:
    """uint16 field with bright round nuclei in channel 0 (for the nucleus-centred crops)."""
    f = rng.integers(100, 200, size=(n_channels, size, size)).astype(np.uint16)
    yy, xx = np.mgrid[:size, :size]
    for k in range(n_nuclei):
        cy, cx = 24 + 40 * k, 30 + 35 * k
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 8**2
        f[:, disk] += 3000
    return f


def _check(d: EvalData, n: int, channels: tuple[str, ...], label: str) -> None:
    assert isinstance(d, EvalData) and len(d) == n
    assert all(names == channels for names in d.channel_names)
    assert all(im.shape[0] == len(channels) for im in d.images)
    assert label in d.labels.columns


def test_bloodmnist(tmp_path: Path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, size=(n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 8, size=(n, 1))
    np.savez(tmp_path / "bloodmnist.npz", **arrays)
    d = load_dataset("bloodmnist", path=tmp_path, size=32)
    _check(d, 12, ("R", "G", "B"), "label")
    assert d.images[0].shape == (3, 32, 32) and d.images[0].dtype == np.uint8
    assert (d.labels["split"] == "test").sum() == 4 and (d.labels["split"] == "train").sum() == 8
    raw = load_dataset("bloodmnist", path=tmp_path / "bloodmnist.npz")
    assert np.array_equal(raw.images[0], np.moveaxis(arrays["train_images"][0], -1, 0))  # HWC -> CHW
    assert raw.labels["label"].tolist()[:6] == arrays["train_labels"].ravel().tolist()


def test_bbbc048(tmp_path: Path):
    rng = np.random.default_rng(1)
    for phase in ("G1", "Anaphase"):
        (tmp_path / phase).mkdir()
        for i in range(2):
            for ch in ("Ch3", "Ch4", "Ch6", "Ch9"):
                Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(
                    tmp_path / phase / f"{i}_{ch}.ome.jpg")
    (tmp_path / "G1" / "7_Ch3.ome.jpg").write_bytes((tmp_path / "G1" / "0_Ch3.ome.jpg").read_bytes())  # incomplete
    d = load_dataset("bbbc048", path=tmp_path, size=32)
    _check(d, 4, ("Ch3", "Ch4", "Ch6"), "stage")
    assert sorted(d.labels["stage"].unique()) == ["Anaphase", "G1"]
    assert d.images[0].shape == (3, 32, 32)


def test_cyclops(tmp_path: Path):
    rng = np.random.default_rng(2)
    for cls in ("ER", "Nucleus", "Vacuole"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            for ch in ("gfp", "rfp"):
                plane = rng.integers(0, 4000, (48, 48), dtype=np.uint16)
                tifffile.imwrite(tmp_path / cls / f"{cls}{i}_{ch}.tif", plane)
    pd.DataFrame({"id": ["ER0", "Nucleus0", "Vacuole0"], "split": ["test"] * 3}).to_csv(tmp_path / "split.csv",
                                                                                     index=False)
    d = load_dataset("cyclops", path=tmp_path, size=32)
    _check(d, 6, ("GFP", "RFP"), "localisation")
    assert d.images[0].dtype == np.uint16 and d.images[0].shape == (2, 32, 32)
    assert (d.labels["split"] == "test").sum() == 3
    # channel order is fixed (GFP first) whatever the file order
    raw = tifffile.imread(tmp_path / "ER" / "ER0_gfp.tif")
    d_full = load_dataset("cyclops", path=tmp_path, size=None)
    i = d_full.labels.index[d_full.labels["id"] == "ER0"][0]
    assert np.array_equal(d_full.images[i][0], raw)


def test_nfkb(tmp_path: Path):
    rng = np.random.default_rng(3)
    (tmp_path / "images").mkdir()
    names = []
    for i in range(4):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
        names.append(name)
    pd.DataFrame({"cat": [0, 5, 10, 20], "image_name": names, "ratio": [0.1, 0.5, 1.0, 2.0]}).to_csv(
        tmp_path / "labels.csv", index=False)
    d = load_dataset("nfkb", path=tmp_path, size=32)
    _check(d, 4, ("NF-kB", "DNA"), "translocation")
    assert d.labels["translocation"].tolist() == [0.1, 0.5, 1.0, 2.0]


def test_bbbc021(tmp_path: Path):
    rng = np.random.default_rng(4)
    rows = []
    for week, plate in (("Week1", "Week1_22123"), ("Week2", "Week2_24121")):
        (tmp_path / plate).mkdir()
        for cpd, conc in (("taxol", 0.3), ("DMSO", 0.0)):
            field = _cell_field(rng, 3)
            files = {}
            for c, w in (("DAPI", 1), ("Tubulin", 2), ("Actin", 4)):
                fn = f"{week}_{cpd}_s1_w{w}.tif"
                tifffile.imwrite(tmp_path / plate / fn, field[("DAPI", "Tubulin", "Actin").index(c)])
                files[c] = fn
            rows.append({**{f"Image_FileName_{c}": f for c, f in files.items()},
                         **{f"Image_PathName_{c}": plate for c in files},
                         "Image_Metadata_Plate_DAPI": plate, "Image_Metadata_Compound": cpd,
                         "Image_Metadata_Concentration": conc})
    pd.DataFrame(rows).to_csv(tmp_path / "BBBC021_v1_image.csv", index=False)
    pd.DataFrame({"compound": ["taxol", "DMSO"], "concentration": [0.3, 0.0],
                  "moa": ["Microtubule stabilizers", "DMSO"]}).to_csv(tmp_path / "BBBC021_v1_moa.csv", index=False)
    d = load_dataset("bbbc021", path=tmp_path, crop=32, cells_per_field=3, size=32)
    _check(d, 12, ("DAPI", "Tubulin", "Actin"), "moa")
    assert set(d.labels["batch"]) == {"Week1", "Week2"}
    assert set(d.labels["compound"]) == {"taxol", "DMSO"}
    # crops are centred on nuclei: the DAPI centre pixel is bright
    assert all(int(im[0, 16, 16]) > 1000 for im in d.images)


def test_bray(tmp_path: Path):
    rng = np.random.default_rng(5)
    chans = ("Hoechst", "ERSyto", "ERSytoBleed", "Ph_golgi", "Mito")
    meta = []
    for plate in ("24277", "24278"):
        (tmp_path / "images" / plate).mkdir(parents=True)
        for well, cpd in (("a01", "DMSO"), ("b02", "BRD-K1")):
            field = _cell_field(rng, 5, n_nuclei=2)
            for k, c in enumerate(chans):
                tifffile.imwrite(tmp_path / "images" / plate / f"{well}_s1_{c}.tif", field[k])
            meta.append({"plate": plate, "well": well, "site": 1, "compound": cpd})
    pd.DataFrame(meta).to_csv(tmp_path / "metadata.csv", index=False)
    d = load_dataset("bray", path=tmp_path, crop=32, cells_per_field=2, size=None)
    _check(d, 8, chans, "compound")
    assert d.images[0].shape == (5, 32, 32)


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
