"""Issue 22 item 17: a folder of one-file-per-channel images read without --pattern silently became one
single-channel image per file. The likely grouping is detected and said, with the pattern that does it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chadavit.data.guess_pattern import guess_channel_pattern
from chadavit.data.readers import group_pattern_files


@pytest.mark.parametrize("names, pattern, channels, n_images", [
    (["A01_s1_w1.tif", "A01_s1_w2.tif", "A01_s2_w1.tif", "A01_s2_w2.tif", "B03_s1_w1.tif", "B03_s1_w2.tif"],
     "{well:[A-P]\\d\\d}_s{site}_w{channel}.tif", ("1", "2"), 3),
    (["AS_09125_050116030001_D03f00d0.tif", "AS_09125_050116030001_D03f00d1.tif",  # CellProfiler ExampleHuman
      "AS_09125_050116030001_D03f00d2.tif"],
     "AS_09125_050116030001_{well:[A-P]\\d\\d}f{site}d{channel}.tif", ("0", "1", "2"), 1),
    (["01_POS002_D.TIF", "01_POS002_F.TIF", "01_POS002_R.TIF", "01_POS076_D.TIF", "01_POS076_F.TIF",  # ExampleFly
      "01_POS076_R.TIF"], "01_POS{site}_{channel}.TIF", ("D", "F", "R"), 2),
    (["plate1_DNA.png", "plate1_GFP.png", "plate2_DNA.png", "plate2_GFP.png"], "plate{f1}_{channel}.png",
     ("DNA", "GFP"), 2),
])
def test_channel_grouping_is_guessed(names: list[str], pattern: str, channels: tuple[str, ...], n_images: int,
                                     tmp_path: Path) -> None:
    guess = guess_channel_pattern(names)
    assert guess is not None and (guess.pattern, guess.channels, guess.n_images) == (pattern, channels, n_images)
    for n in names:  # the suggested pattern works as written
        (tmp_path / n).write_bytes(b"")
    grouping = group_pattern_files(tmp_path, guess.pattern)
    assert len(grouping.images) == n_images and not grouping.unmatched


@pytest.mark.parametrize("names", [
    ["A01_s1.tif", "A01_s2.tif", "A02_s1.tif", "A02_s2.tif"],  # sites of multi-channel images, not channels
    ["a.png", "b.png", "c.png"],  # three images
    ["x_1.tif", "x_2.tif", "y_1.tif", "y_3.tif", "y_2.tif"],  # no channel marker before the numbers
    ["one.tif"],
    ["A01_w1.tif", "A01_w2.tif", "A02_w1.tif"],  # an image with one channel only: no consistent grouping
])
def test_no_guess_where_names_do_not_say_channels(names: list[str]) -> None:
    assert guess_channel_pattern(names) is None


def _pngs(folder: Path, names: list[str]) -> None:
    folder.mkdir()
    for n in names:
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / n)


def test_embed_input_without_pattern_says_how_to_group(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from chadavit.embed.sources import open_source

    _pngs(tmp_path / "plate", ["A01_s1_w1.png", "A01_s1_w2.png", "A02_s1_w1.png", "A02_s1_w2.png"])
    with caplog.at_level(logging.WARNING, logger="chadavit"):
        records = open_source(tmp_path / "plate")
    assert len(records) == 4
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "look like one file per channel (channels 1, 2)" in warning
    assert '--pattern "{well:[A-P]\\d\\d}_s{site}_w{channel}.png"' in warning and "into 2 image(s)" in warning
    assert len(open_source(tmp_path / "plate", pattern="{well:[A-P]\\d\\d}_s{site}_w{channel}.png")) == 2
    caplog.clear()
    _pngs(tmp_path / "multi", ["A01_s1.png", "A01_s2.png", "A02_s1.png"])
    with caplog.at_level(logging.WARNING, logger="chadavit"):
        open_source(tmp_path / "multi")
    assert not [r for r in caplog.records if "per channel" in r.getMessage()]
