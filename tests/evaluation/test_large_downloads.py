"""Issue 22 item 20: `datasets fetch bbbc021` without --subset started ~41 GB of downloads with no word; a
multi-GB fetch now shows its size and needs --yes (or a yes on a terminal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chadavit.evaluation.datasets.download import DownloadError, RetryPolicy
from chadavit.evaluation.datasets.fetching import LargeDownloadError, fetch
from tests.evaluation.mirror import serve

NO_WAIT = RetryPolicy(retries=0, backoff=0.0, timeout=10)
PLATES = ["Week1_22123", "Week1_22141", "Week2_24121"]


def _serve_tables(m) -> None:
    table = "Image_Metadata_Plate_DAPI,Image_FileName_DAPI\n" + "".join(f"{p},{p}.tif\n" for p in PLATES)
    m.files["/bbbc021/BBBC021_v1_image.csv"] = table.encode()
    m.files["/bbbc021/BBBC021_v1_moa.csv"] = b"compound,concentration,moa\n"


def test_large_fetch_is_refused_without_yes(tmp_path: Path) -> None:
    asked: list[str] = []
    with serve() as m:
        _serve_tables(m)
        with pytest.raises(LargeDownloadError, match=r"bbbc021: 3 plate zip\(s\) of ~750 MB: about 2 GB") as info:
            fetch("bbbc021", tmp_path, base_url=m.url, policy=NO_WAIT, say=lambda s: None)
        assert "--yes" in str(info.value) and "--subset" in str(info.value)
        with pytest.raises(LargeDownloadError):  # "no" on the terminal
            fetch("bbbc021", tmp_path, base_url=m.url, policy=NO_WAIT, say=lambda s: None,
                  ask=lambda q: asked.append(q) or False)
        assert asked and asked[0].endswith("Continue? [y/N] ")
        for go in ({"yes": True}, {"ask": lambda q: True}):  # confirmed: the plate downloads start
            with pytest.raises(DownloadError, match="BBBC021_v1_images_Week1_22123.zip: HTTP 404"):
                fetch("bbbc021", tmp_path, base_url=m.url, policy=NO_WAIT, say=lambda s: None, **go)
        with pytest.raises(DownloadError, match="HTTP 404"):  # one plate is below the limit: no question
            fetch("bbbc021", tmp_path, base_url=m.url, subset=["Week2"], policy=NO_WAIT, say=lambda s: None)


def test_cli_without_a_terminal_needs_yes(tmp_path: Path, cli_error) -> None:
    with serve() as m:
        _serve_tables(m)
        line = cli_error(["datasets", "fetch", "bbbc021", "--root", str(tmp_path), "--base-url", m.url])
    assert "about 2 GB to download" in line and "rerun with --yes" in line
