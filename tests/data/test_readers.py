import numpy as np
import pytest
import tifffile
from PIL import Image

from chadavit.data.readers import ImageReadError, group_channel_files, read_image_file


def test_real_cellprofiler_images(shared_dir):
    root = shared_dir / "data" / "cellprofiler_examples"
    human = group_channel_files(root / "ExampleHuman", r"{plate}_{well:[A-P]\d\d}f{site}d{channel}.tif")
    assert len(human) == 1 and sorted(human[0].channels) == ["0", "1", "2"]
    img, names = human[0].read()
    assert img.shape == (3, 512, 512) and img.dtype == np.uint8 and names == ["0", "1", "2"]
    png = read_image_file(next((root / "ExampleColocalization").glob("*.png")))
    assert png.dtype == np.uint16 and png.shape == (1, 1040, 1392)


def test_multichannel_tiff_and_rgb_png(tmp_path):
    arr = np.random.default_rng(0).integers(0, 4000, (4, 20, 30)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.ome.tif", arr, metadata={"axes": "CYX"})
    assert np.array_equal(read_image_file(tmp_path / "a.ome.tif"), arr)
    rgb = np.random.default_rng(1).integers(0, 255, (20, 30, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b.png")
    got = read_image_file(tmp_path / "b.png")
    assert got.shape == (3, 20, 30) and np.array_equal(got, np.moveaxis(rgb, -1, 0))


def test_pattern_grouping_and_missing_or_mismatched_channels(tmp_path):
    for well in ("A01", "B02"):
        for ch in ("DAPI", "GFP"):
            tifffile.imwrite(tmp_path / f"{well}_s1_{ch}.tif", np.zeros((16, 16), np.uint16))
    tifffile.imwrite(tmp_path / "C03_s1_DAPI.tif", np.zeros((16, 16), np.uint16))
    tifffile.imwrite(tmp_path / "D04_s1_DAPI.tif", np.zeros((16, 16), np.uint16))
    tifffile.imwrite(tmp_path / "D04_s1_GFP.tif", np.zeros((8, 16), np.uint16))
    groups = group_channel_files(tmp_path, "{well}_{site}_{channel}.tif")
    assert [g.key["well"] for g in groups] == ["A01", "B02", "C03", "D04"]
    img, names = groups[0].read(["GFP", "DAPI"])
    assert img.shape == (2, 16, 16) and names == ["GFP", "DAPI"]
    with pytest.raises(ImageReadError, match=r"missing channel file\(s\) for \['GFP'\]"):
        groups[2].read(["DAPI", "GFP"])
    with pytest.raises(ImageReadError, match="channel files differ in size"):
        groups[3].read()


def test_corrupt_file_is_named(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageReadError, match="broken.tif: unreadable image"):
        read_image_file(bad)
    with pytest.raises(ImageReadError, match="unsupported file type"):
        (tmp_path / "x.bmp").write_bytes(b"")
        read_image_file(tmp_path / "x.bmp")


def test_pixel_limit_is_read_from_the_header_before_decoding(tmp_path, monkeypatch):
    """Issue 22 item 10: a 160 KB TIFF decoded to 2.1 GB; now the declared shape is checked first."""
    import tifffile

    from chadavit.data import readers

    big = tmp_path / "bomb.tif"
    tile = np.zeros((1024, 1024), np.uint8)  # 360 M values written tile by tile: ~0.4 MB on disk, little memory
    tifffile.imwrite(big, (tile for _ in range(3 * 20 * 6)), shape=(3, 20000, 6000), dtype=np.uint8,
                     tile=(1024, 1024), compression="zlib", photometric="minisblack")
    assert big.stat().st_size < 2_000_000
    decoded = []
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", lambda *a, **k: decoded.append(1))
    with pytest.raises(readers.ImageReadError, match=r"bomb\.tif: 360,000,000 pixel values .* exceed the limit "
                                                     r"of 268,435,456; raise it with --max-pixels"):
        readers.read_image_file(big)
    assert not decoded
    png = tmp_path / "wide.png"
    from PIL import Image

    Image.fromarray(np.zeros((40, 50), np.uint8)).save(png)
    monkeypatch.setattr(readers, "_max_pixels", [1999])
    with pytest.raises(readers.ImageReadError, match="2,000 pixel values"):
        readers.read_image_file(png)
    readers.set_max_pixels(2000)
    assert readers.read_image_file(png).shape == (1, 40, 50)


def test_max_pixels_option_reaches_embed_and_import(tmp_path, monkeypatch, capsys):
    import tifffile

    from chadavit.cli.main import main
    from chadavit.data import readers

    monkeypatch.setattr(readers, "_max_pixels", [readers.DEFAULT_MAX_PIXELS])
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", np.ones((2, 64, 64), np.uint16))
    assert main(["data", "import", str(tmp_path / "in"), "--out", str(tmp_path / "ds"), "--multichannel",
                 "--max-pixels", "1000"]) == 1
    assert "exceed the limit of 1,000" in capsys.readouterr().err
    rc = main(["embed", str(tmp_path / "in"), "--out", str(tmp_path / "e.parquet"), "--model", "random:chada_vit_nano",
               "--no-progress", "--max-pixels", "8000"])
    assert rc == 1 and "exceed the limit of 8,000" in (tmp_path / "e.errors.csv").read_text()
    assert main(["embed", str(tmp_path / "in"), "--out", str(tmp_path / "e.parquet"), "--model",
                 "random:chada_vit_nano", "--no-progress", "--max-pixels", "8192000"]) == 0
