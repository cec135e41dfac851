"""Listing inputs: filename patterns, metadata from names, CSV, OME-TIFF, OME-Zarr, datasets, channel choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from chadavit.data.ome_zarr import find_ome_zarr_images, write_ome_zarr_image, write_ome_zarr_plate
from chadavit.embed.channels import ChannelError, ChannelSpec, VocabularyChecker, parse_channel_map
from chadavit.embed.sources import SourceError, detect_format, open_source, parse_name_metadata

from .conftest import CP, HUMAN_PATTERN, blobs


@pytest.mark.parametrize(("name", "well", "site"), [
    ("AS_09125_050116030001_D03f00d1.tif", "D03", "0"),
    ("plate1_B02_s3_w1_ABCD.tif", "B02", "3"),
    ("r02c05f03p01-ch1sk1fk1fl1.tiff", "B05", "3"),
    ("Channel 2-12-A-12-00.tif", "A12", None),
    ("1649_1109_0003_Amp5-1_B_20070424_C20_w2_5F64.tif", "C20", None),
])
def test_well_and_site_from_file_names(name: str, well: str, site: str | None) -> None:
    meta = parse_name_metadata(name)
    assert meta["Well"] == well
    assert meta.get("Site") == site


def test_no_well_in_name() -> None:
    assert parse_name_metadata("CometTails.tif") == {}


def test_pattern_groups_real_files_with_typed_and_ignored_fields(shared_dir: Path) -> None:
    human = open_source(shared_dir / CP / "ExampleHuman", pattern=HUMAN_PATTERN)
    assert len(human) == 1
    assert human[0].channel_names == ["0", "1", "2"]
    assert human[0].metadata == {"Plate": "AS_09125_050116030001", "Well": "D03", "Site": "0"}
    worms = open_source(shared_dir / CP / "ExampleUntangleWorms",
                        pattern=r"{plate}_{well:[A-P]\d\d}_{channel:w\d}_{_id}.tif")
    assert [r.metadata["Well"] for r in worms] == ["C01", "C20"]
    assert all(r.channel_names == ["w1", "w2"] and len(r.sources) == 2 for r in worms)
    arr, names = worms[0].read(["w2", "w1"])
    assert arr.shape == (2, 520, 696) and arr.dtype == np.uint16 and names == ["w2", "w1"]


def test_pattern_without_matches_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(SourceError, match="no file matches"):
        open_source(tmp_path, pattern="{well}_{channel}.png")


def test_channel_spec_select_map_and_missing() -> None:
    spec = ChannelSpec.parse("PH3,DNA", "d0=DNA,d1=PH3")
    assert spec.select(["d0", "d1", "d2"]) == ([1, 0], ["PH3", "DNA"])
    # anonymous planes (files without channel metadata) are named by position
    assert ChannelSpec.parse("DNA,Actin").select(["ch0", "ch1"]) == ([0, 1], ["DNA", "Actin"])
    with pytest.raises(ChannelError, match=r"img7: missing channel\(s\) \['Actin'\]"):
        ChannelSpec.parse("DNA,Actin").select(["DNA", "ch1", "ch2"], "img7")
    with pytest.raises(ChannelError, match="SOURCE=NAME"):
        parse_channel_map("d0:DNA")


def test_vocabulary_checker_names_unknown_channels(identity_model) -> None:  # noqa: ANN001
    chk = VocabularyChecker(identity_model.config)
    assert chk.check(["DNA", "Mito"]) == ["Mito"]
    assert chk.check(["Mito"]) == []  # warned once
    assert "Mito" in chk.message(["Mito"]) and "--channel-map" in chk.message(["Mito"])
    with pytest.raises(ChannelError, match="not in the model's channel vocabulary"):
        VocabularyChecker(identity_model.config, strict=True).check(["Mito"])


def test_csv_loaddata_and_path_columns(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    for w in ("A01", "B02"):
        for ch in ("dna", "act"):
            tifffile.imwrite(tmp_path / "img" / f"{w}_{ch}.tif", blobs(32, 40, 2, hash(w + ch) % 100))
    (tmp_path / "loaddata.csv").write_text(
        "Metadata_Plate,Metadata_Well,Metadata_Compound,FileName_DNA,PathName_DNA,FileName_Actin,PathName_Actin\n"
        "P1,A01,DMSO,A01_dna.tif,img,A01_act.tif,img\n"
        f"P1,B02,taxol,B02_dna.tif,{tmp_path / 'img'},B02_act.tif,{tmp_path / 'img'}\n")
    recs = open_source(tmp_path / "loaddata.csv")
    assert detect_format(tmp_path / "loaddata.csv") == "csv"
    assert [r.image_id for r in recs] == ["A01_dna", "B02_dna"]
    assert recs[1].metadata == {"Plate": "P1", "Well": "B02", "Compound": "taxol"}
    arr, names = recs[0].read(recs[0].channel_names)
    assert names == ["DNA", "Actin"] and arr.shape == (2, 32, 40)
    (tmp_path / "simple.csv").write_text("image_id,treatment,DNA,Actin\nx1,ctrl,img/A01_dna.tif,img/A01_act.tif\n")
    recs = open_source(tmp_path / "simple.csv")
    assert recs[0].image_id == "x1" and recs[0].channel_names == ["DNA", "Actin"]
    assert recs[0].metadata["Treatment"] == "ctrl"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="no column lists image files"):
        open_source(tmp_path / "bad.csv")


def test_ome_tiff_channel_names(tmp_path: Path) -> None:
    img = np.stack([blobs(48, 48, 3, 1), blobs(48, 48, 3, 2)])
    tifffile.imwrite(tmp_path / "a.ome.tif", img, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "Actin"]}})
    tifffile.imwrite(tmp_path / "b.tif", img)
    recs = open_source(tmp_path)
    assert [r.image_id for r in recs] == ["a", "b"]
    assert recs[0].read(None)[1] == ["DAPI", "Actin"]
    assert recs[1].read(None)[1] == ["ch0", "ch1"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_image_and_plate(tmp_path: Path, zarr_format: int) -> None:
    img = np.stack([blobs(40, 56, 3, 1), blobs(40, 56, 3, 2)])
    write_ome_zarr_image(tmp_path / "one.ome.zarr", img, ["DNA", "Actin"], zarr_format=zarr_format)
    write_ome_zarr_plate(tmp_path / "p.ome.zarr", {("A", 1, 0): img, ("A", 1, 1): img, ("B", 12, 0): img[:1]},
                         ["DNA", "Actin"], name="P1", zarr_format=zarr_format)
    one = open_source(tmp_path / "one.ome.zarr")
    assert len(one) == 1 and one[0].channel_names == ["DNA", "Actin"]
    arr, names = one[0].read(["Actin"])
    assert np.array_equal(arr[0], img[1]) and names == ["Actin"]
    plate = open_source(tmp_path / "p.ome.zarr")
    assert [(r.metadata["Plate"], r.metadata["Well"], r.metadata["Site"]) for r in plate] == [
        ("P1", "A01", "0"), ("P1", "A01", "1"), ("P1", "B12", "0")]
    assert len(open_source(tmp_path, input_format="ome-zarr")) == 4  # a folder of stores
    assert len(find_ome_zarr_images(tmp_path / "p.ome.zarr")) == 3


def test_dataset_source(tmp_path: Path) -> None:
    from chadavit import DatasetWriter

    with DatasetWriter(tmp_path / "ds") as w:
        w.add(np.stack([blobs(32, 32, 2, 1)] * 3), "im0", ["DNA", "Actin", "Tubulin"], source="x.tif", well="C07")
        w.add(blobs(32, 32, 2, 2)[None], "im1", ["DNA"], source="y.tif", well="C08")
    recs = open_source(tmp_path / "ds")
    assert [r.image_id for r in recs] == ["im0", "im1"]
    assert recs[0].metadata["Well"] == "C07" and recs[1].channel_names == ["DNA"]
    assert recs[0].read(["Tubulin", "DNA"])[0].shape == (2, 32, 32)


def test_damaged_dataset_images_are_error_rows(damaged_dataset, tmp_path: Path, tiny_model) -> None:
    """Issue 22 item 3: `embed` of a dataset with a missing chunk wrote blank-image features, exit 0."""
    from chadavit.embed import EmbedConfig, run_embed

    res = run_embed(EmbedConfig(input=str(damaged_dataset.path), out=str(tmp_path / "e.parquet"), progress=False,
                                model="random:chada_vit_nano",
                                workers=1), model=tiny_model)
    assert res.n_failed == 3 and res.n_computed == 0
    assert all("differs from its checksum" in e["message"] for e in res.errors)


def _with_bad_name(root: Path) -> Path:
    import os

    root.mkdir()
    tifffile.imwrite(root / "ok.tif", np.ones((2, 64, 64), np.uint16))
    bad = Path(os.fsdecode(bytes(root) + b"/bad\xff.tif"))  # Latin-1 bytes: not UTF-8
    tifffile.imwrite(bad, np.full((2, 64, 64), 7, np.uint16))
    return root


def test_file_names_that_are_not_utf8_are_kept_escaped(tmp_path: Path, tiny_model, capsys) -> None:
    """Issue 22 item 4: such a name stopped `embed` and `data import` with nothing saved, on every rerun."""
    import pandas as pd

    from chadavit.cli.main import main
    from chadavit.data.dataset import open_dataset
    from chadavit.embed import EmbedConfig, run_embed

    src = _with_bad_name(tmp_path / "in")
    res = run_embed(EmbedConfig(input=str(src), out=str(tmp_path / "e.parquet"), model="random:chada_vit_nano",
                                progress=False, workers=1), model=tiny_model)
    assert res.n_failed == 0 and res.n_computed == 2
    df = pd.read_parquet(tmp_path / "e.parquet")
    assert sorted(df.Metadata_ImageId) == ["bad\\xff", "ok"]
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--multichannel"]) == 0
    ds = open_dataset(tmp_path / "ds")
    assert sorted(ds.manifest.image_id) == ["in/bad\\xff", "in/ok"] and ds.verify() == []
    assert ds.read(list(ds.manifest.image_id).index("in/bad\\xff")).max() == 7
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--multichannel"]) == 0  # rerun: no-op
    assert "imported 0 image(s)" in capsys.readouterr().out


def _lock_folder(monkeypatch, locked: Path) -> None:
    """``locked`` cannot be listed, as a folder without read permission for a non-root user."""
    import os

    real_scandir, real_listdir = os.scandir, os.listdir

    def deny(real):  # noqa: ANN001, ANN202
        def f(path=".", *a):  # noqa: ANN001, ANN002, ANN202
            if Path(os.fsdecode(path)) == locked:
                raise PermissionError(13, "Permission denied", str(locked))
            return real(path, *a)
        return f

    monkeypatch.setattr(os, "scandir", deny(real_scandir))
    monkeypatch.setattr(os, "listdir", deny(real_listdir))


def test_unreadable_sub_folders_are_reported_not_dropped(tmp_path: Path, tiny_model, monkeypatch, capsys) -> None:
    """Issue 22 item 12: an unreadable sub-folder crashed input detection, or its images vanished with exit 0."""
    from chadavit.cli.main import main
    from chadavit.embed import EmbedConfig, run_embed

    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    tifffile.imwrite(src / "a_w1.tif", blobs(64, 64, 3, 1))
    tifffile.imwrite(src / "a_w2.tif", blobs(64, 64, 3, 2))
    tifffile.imwrite(src / "locked" / "b_w1.tif", blobs(64, 64, 3, 3))
    (src / "locked.zarr").mkdir()  # input detection looks into sub-folders for OME-Zarr stores
    _lock_folder(monkeypatch, src / "locked")
    _lock_folder(monkeypatch, src / "locked.zarr")
    assert detect_format(src) == "files"
    for kw, images in (({}, 2), ({"pattern": "{image}_{channel}.tif"}, 1)):
        res = run_embed(EmbedConfig(input=str(src), out=str(tmp_path / f"e{len(kw)}.parquet"), progress=False,
                                    model="random:chada_vit_nano", workers=1, **kw), model=tiny_model)
        assert res.n_computed == images and res.n_failed == 2, kw  # both locked folders are error rows
        messages = " ".join(e["message"] for e in res.errors)
        assert f"{src / 'locked'}: cannot list this folder" in messages and "Permission denied" in messages
    rc = main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--multichannel"])
    assert rc == 1 and "locked: cannot list this folder" in capsys.readouterr().err
