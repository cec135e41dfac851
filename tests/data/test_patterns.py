"""Filename-pattern grouping accounts for every file: used, unused (not matching) or a conflict (an error)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from chadavit.cli.main import main
from chadavit.data.dataset import open_dataset
from chadavit.data.readers import PatternError, group_pattern_files

MINIMAL = ("P1_A01_w1_a.tif", "P1_A01_w2_b.tif", "P1_A01_w1_c.tif", "P1_A01_w2_d.tif")
WORMS_AMBIGUOUS = "{plate}_{well}_{channel}_{_uuid}.tif"
WORMS_TYPED = r"{plate}_{well:[A-P]\d\d}_{channel:w\d}_{_uuid}.tif"


def _write(folder: Path, names: tuple[str, ...] | list[str], size: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(names):
        tifffile.imwrite(folder / n, np.full((size, size), k + 1, np.uint16))



def test_minimal_duplicate_channels_is_an_error_naming_the_files(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL)
    with pytest.raises(PatternError) as info:
        group_pattern_files(tmp_path, "{plate}_{well}_{channel}_{_uuid}.tif")
    msg = str(info.value)
    assert "P1_A01_w1_a.tif and P1_A01_w1_c.tif" in msg and "P1_A01_w2_b.tif and P1_A01_w2_d.tif" in msg
    assert "\n" not in msg


def test_minimal_case_with_the_distinguishing_field_gives_two_images(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL)
    # a and c are one image, b and d another: the ids pair up when the field identifies the image
    (tmp_path / "P1_A01_w1_c.tif").rename(tmp_path / "P1_A01_w1_b.tif")
    (tmp_path / "P1_A01_w2_b.tif").rename(tmp_path / "P1_A01_w2_a.tif")
    (tmp_path / "P1_A01_w2_d.tif").rename(tmp_path / "P1_A01_w2_b.tif")
    g = group_pattern_files(tmp_path, "{plate}_{well}_{channel}_{field}.tif")
    assert [sorted(i.channels) for i in g.images] == [["w1", "w2"], ["w1", "w2"]]
    assert g.n_files == 4 and g.n_used == 4 and not g.unmatched
    assert g.summary() == "4 file(s), 2 image(s), 0 file(s) unused"


def test_ambiguous_split_that_changes_images_is_an_error(tmp_path: Path) -> None:
    names = ["1649_1109_B_C01_w1_10E0-AF.tif", "1649_1109_B_C01_w2_CB2F-18.tif",
             "1649_1109_B_C20_w1_0F5A-41.tif", "1649_1109_B_C20_w2_5F64-C5.tif"]
    _write(tmp_path, names)
    with pytest.raises(PatternError, match="more than one way") as info:
        group_pattern_files(tmp_path, WORMS_AMBIGUOUS)
    assert names[0] in str(info.value) and "{well:[A-P]" in str(info.value)
    g = group_pattern_files(tmp_path, WORMS_TYPED)
    assert [(i.key["well"], sorted(i.channels)) for i in g.images] == [("C01", ["w1", "w2"]), ("C20", ["w1", "w2"])]
    assert {i.key["plate"] for i in g.images} == {"1649_1109_B"}


def test_ambiguous_split_of_metadata_only_is_an_error(tmp_path: Path) -> None:
    """Issue 22 item 16: ExampleHuman's names under {plate}_{well}... gave Plate=AS, Well=09125_..._D03 and exit 0."""
    _write(tmp_path, ["AS_09125_050116030001_D03f00d0.tif", "AS_09125_050116030001_D03f00d1.tif"])
    with pytest.raises(PatternError, match="more than one way") as info:
        group_pattern_files(tmp_path, "{plate}_{well}f{site}d{channel}.tif")
    msg = str(info.value)
    assert "'plate': 'AS', 'well': '09125_050116030001_D03'" in msg  # both readings are shown
    assert "'plate': 'AS_09125_050116030001', 'well': 'D03'" in msg and "{well:[A-P]\\d\\d}" in msg
    g = group_pattern_files(tmp_path, "{plate}_{well:[A-P]\\d\\d}f{site}d{channel}.tif")
    assert [(i.key["plate"], i.key["well"]) for i in g.images] == [("AS_09125_050116030001", "D03")]


def test_unmatched_files_are_counted_and_named(tmp_path: Path) -> None:
    _write(tmp_path, ["A01_s1_DNA.tif", "A01_s1_GFP.tif", "A01-s2-DNA.tif", "notes_A01.png"])
    (tmp_path / "README.txt").write_text("not an image: not counted")
    g = group_pattern_files(tmp_path, "{well}_{site}_{channel}.tif")
    assert g.n_files == 4 and len(g.images) == 1 and [p.name for p in g.unmatched] == ["A01-s2-DNA.tif",
                                                                                     "notes_A01.png"]
    s = g.summary(tmp_path)
    assert s.startswith("4 file(s), 1 image(s), 2 file(s) unused") and "A01-s2-DNA.tif" in s


def test_pattern_without_channel_or_invalid_regex(tmp_path: Path) -> None:
    _write(tmp_path, ["a.tif"])
    with pytest.raises(PatternError, match="must contain a {channel} field"):
        group_pattern_files(tmp_path, "{well}.tif")
    with pytest.raises(PatternError, match="not valid"):
        group_pattern_files(tmp_path, "{well:[A-}_{channel}.tif")


def test_cli_import_and_embed_refuse_duplicate_channels(tmp_path: Path, cli_error) -> None:
    _write(tmp_path / "src", MINIMAL)
    pattern = "{plate}_{well}_{channel}_{_uuid}.tif"
    msg = cli_error(["data", "import", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--pattern", pattern])
    assert "P1_A01_w1_a.tif and P1_A01_w1_c.tif" in msg
    assert not (tmp_path / "ds" / "dataset.json").exists()
    msg = cli_error(["embed", tmp_path / "src", "--pattern", pattern, "--model", "random:chada_vit_nano",
                     "--out", tmp_path / "e.parquet", "--no-progress"])
    assert "P1_A01_w2_b.tif and P1_A01_w2_d.tif" in msg
    assert not list(tmp_path.glob("e.*"))


def test_cli_import_reports_unused_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "src", ["A01_s1_DNA.tif", "A01_s1_GFP.tif", "stray.tif"], size=16)
    assert main(["data", "import", str(tmp_path / "src"), "--out", str(tmp_path / "ds"),
                 "--pattern", "{well}_{site}_{channel}.tif"]) == 0
    err = capsys.readouterr().err
    assert "3 file(s), 1 image(s), 1 file(s) unused (not matching the pattern: stray.tif)" in err
    assert len(open_dataset(tmp_path / "ds")) == 1


def test_untangle_worms_real_files(shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   cli_error) -> None:
    src = shared_dir / "data" / "cellprofiler_examples" / "ExampleUntangleWorms"
    msg = cli_error(["data", "import", str(src), "--out", str(tmp_path / "bad"), "--pattern", WORMS_AMBIGUOUS])
    assert "splits 4 file name(s) in more than one way" in msg and "C01_w1" in msg
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--pattern", WORMS_TYPED]) == 0
    assert "4 file(s), 2 image(s), 0 file(s) unused" in capsys.readouterr().err
    ds = open_dataset(tmp_path / "ds")
    assert len(ds) == 2 and ds.channel_names(0) == ["w1", "w2"] and ds.read(0).shape == (2, 520, 696)
