"""`chadavit data import` / `data info` on real images from ../shared/data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile

from chadavit.cli.main import main
from chadavit.data.dataset import open_dataset
from chadavit.data.readers import read_image_file


def test_import_pattern_real_multichannel(shared_dir, tmp_path, capsys):
    src = shared_dir / "data" / "cellprofiler_examples" / "ExampleVitraImages"
    out = tmp_path / "vitra"
    rc = main(["data", "import", str(src), "--out", str(out), "--pattern", r"Channel {channel:\d}-{well}-00.tif",
               "--channel-map", "2=DNA,1=protein", "--source", "vitra"])
    assert rc == 0
    ds = open_dataset(out)
    assert len(ds) == 2
    assert ds.channel_names(0) == ["DNA", "protein"]
    img = ds.read(0)
    assert img.shape == (2, 1024, 1360) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[0], read_image_file(src / "Channel 2-01-A-01-00.tif")[0])
    assert set(ds.manifest.source) == {"vitra"}
    assert ds.verify() == []
    # importing again adds nothing (ids already present)
    assert main(["data", "import", str(src), "--out", str(out), "--pattern", r"Channel {channel:\d}-{well}-00.tif",
                 "--channel-map", "2=DNA,1=protein", "--source", "vitra"]) == 0
    assert len(open_dataset(out)) == 2
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    assert "images: 2" in capsys.readouterr().out


def test_import_multichannel_uint16_and_corrupt_file(shared_dir, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(shared_dir / "data" / "stardist_dsb2018_nuclei" / "img2d.tif", src / "nuclei.tif")
    shutil.copy(shared_dir / "data" / "cellprofiler_examples" / "ExampleColocalization" / "0_1_N_G.png", src / "g.png")
    (src / "broken.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "ds"
    rc = main(["data", "import", str(src), "--out", str(out), "--multichannel", "--channel-map", "0=DNA"])
    assert rc == 1  # a file failed: non-zero exit, the others are imported
    err = capsys.readouterr().err
    assert "broken.tif" in err
    ds = open_dataset(out)
    assert len(ds) == 2
    assert {str(d) for d in ds.manifest.dtype} == {"uint16"}
    assert ds.channel_names(0) == ["DNA"]


def test_import_errors(tmp_path, capsys):
    assert main(["data", "import", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--multichannel"]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "import", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                 "--pattern", "{well}_{channel}.tif"]) == 2
    assert main(["data", "info", str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit):
        main(["data", "import", str(tmp_path), "--out", str(tmp_path / "o")])  # neither --pattern nor --multichannel


def test_import_multichannel_names_channels_like_embed(tmp_path):
    """One reader for multi-channel files: OME-XML channel names in `data import` as in `embed`."""
    from chadavit.embed.sources import open_source

    src = tmp_path / "src"
    src.mkdir()
    img = np.random.default_rng(0).integers(0, 4000, (2, 16, 16)).astype(np.uint16)
    tifffile.imwrite(src / "a.ome.tif", img, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "Actin"]}})
    tifffile.imwrite(src / "b.tif", img)
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--multichannel",
                 "--channel-map", "DAPI=DNA,1=Second"]) == 0
    ds = open_dataset(tmp_path / "ds")
    names = dict(zip(ds.manifest.image_id, (ds.channel_names(i) for i in range(len(ds)))))
    assert names == {"src/a": ["DNA", "Actin"], "src/b": ["ch0", "Second"]}
    embed_names = {r.image_id: r.read(None)[1] for r in open_source(src)}
    assert embed_names == {"a": ["DAPI", "Actin"], "b": ["ch0", "ch1"]}
