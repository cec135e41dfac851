"""Embed checks its options and inputs before work, refuses images it cannot see, never writes an empty file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from chadavit.cli.main import main
from chadavit.data.readers import read_image_file
from chadavit.embed import EmbedConfig, EmbedError, run_embed
from chadavit.errors import ChadavitError

from .conftest import blobs

PATTERN = "{well}_s{site}_{channel}.tif"


def cfg(inp: Path, out: Path, **kw) -> EmbedConfig:
    kw.setdefault("progress", False)
    kw.setdefault("model", "random:chada_vit_nano")
    kw.setdefault("workers", 0)
    return EmbedConfig(input=str(inp), out=str(out), **kw)


def _sized(folder: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, (h, w)) in enumerate(sizes.items()):
        tifffile.imwrite(folder / f"{name}.tif", np.random.default_rng(i).integers(0, 4000, (h, w)).astype(np.uint16))
    return folder


def _outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("e"))


@pytest.mark.parametrize("options, message", [
    ({"crop_size": 0}, "--crop-size must be a positive integer, got 0"),
    ({"batch_size": 0}, "--batch-size must be a positive integer"),
    ({"workers": -1}, "--workers must be 0 or more"),
    ({"crops": "full", "stride": 8}, "--stride applies to --crops grid"),
    ({"nuclei_channel": "w1"}, "--nuclei-channel applies to --crops nuclei"),
    ({"crops": "tiles"}, "--crops must be one of grid, nuclei, full"),
    ({"num_heads": 0}, "--num-heads must be a positive integer"),
    ({"crops": "nuclei", "nuclei_channel": "DAPX", "pattern": PATTERN}, "--nuclei-channel 'DAPX' is not a channel"),
    ({"crops": "nuclei", "pattern": PATTERN}, "--crops nuclei needs --nuclei-channel"),
])
def test_option_mistakes_fail_before_any_image(plate_folder: Path, tmp_path: Path, tiny_model,
                                               options, message) -> None:
    read = []
    with pytest.raises(EmbedError, match=message.replace("(", r"\(")):
        run_embed(cfg(plate_folder, tmp_path / "e.parquet", **options), model=tiny_model,
                  progress_callback=read.append)
    assert read == [] and _outputs(tmp_path) == []  # nothing read, nothing written: no .parts, no Parquet


def test_cli_option_mistake_is_one_line(plate_folder: Path, tmp_path: Path, cli_error) -> None:
    argv = ["embed", str(plate_folder), "--pattern", PATTERN, "--model", "random:chada_vit_nano",
            "--out", str(tmp_path / "e.parquet"), "--crop-size", "-3", "--no-progress"]
    assert cli_error(argv) == "error: --crop-size must be a positive integer, got -3"
    assert _outputs(tmp_path) == []
    missing = ["embed", str(tmp_path / "nope"), "--model", "random:chada_vit_nano", "--out", str(tmp_path / "e")]
    assert cli_error(missing) == f"error: input {tmp_path / 'nope'} not found"


def test_tiny_images_refused_or_warned_in_errors_csv(tmp_path: Path, tiny_model) -> None:
    src = _sized(tmp_path / "src", {"a_ok": (64, 80), "b_small": (40, 48), "c_8x8": (8, 8), "d_15x40": (15, 40),
                                    "e_24": (24, 24), "f_1x1": (1, 1)})
    res = run_embed(cfg(src, tmp_path / "out.parquet"), model=tiny_model)  # tiny_model: 64 px input, 16 px patches
    errors = pd.read_csv(res.errors_path).set_index("image_id")
    assert set(errors.index) == {"b_small", "c_8x8", "d_15x40", "e_24", "f_1x1"}
    assert errors.loc["b_small", "level"] == "warning" and "40x48 pixels, smaller than the 64x64 crop" in \
        errors.loc["b_small", "message"]
    assert "8x8 pixels, smaller than one 16x16 patch" in errors.loc["c_8x8", "message"]
    assert "15x40 pixels, smaller than one 16x16 patch" in errors.loc["d_15x40", "message"]
    assert "86% of each crop would be zero padding; use --crop-size 24" in errors.loc["e_24", "message"]
    assert "1x1 pixels" in errors.loc["f_1x1", "message"] and "z-stack" not in errors.loc["f_1x1", "message"]
    assert (errors.drop("b_small").level == "error").all()
    df = pd.read_parquet(res.out)
    assert sorted(set(df.Metadata_ImageId)) == ["a_ok", "b_small"] and res.n_failed == 4


def test_one_pixel_images_read_as_one_pixel(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "p.tif", np.array([[7]], np.uint16))
    tifffile.imwrite(tmp_path / "line.tif", np.arange(5, dtype=np.uint16)[:, None])
    assert read_image_file(tmp_path / "p.tif").shape == (1, 1, 1)
    assert read_image_file(tmp_path / "line.tif").shape == (1, 5, 1)


def test_all_failed_writes_no_output_and_the_fixed_rerun_is_accepted(tmp_path: Path, tiny_model) -> None:
    src = _sized(tmp_path / "src", {"x": (24, 24), "y": (24, 30)})
    out = tmp_path / "e.parquet"
    res = run_embed(cfg(src, out), model=tiny_model)
    assert res.out is None and res.n_failed == 2 and res.n_rows == 0
    assert not out.exists() and (tmp_path / "e.errors.csv").is_file()
    # the corrected options differ from the failed run's, which finished nothing: accepted, not refused
    res = run_embed(cfg(src, out, crop_size=24), model=tiny_model)
    assert res.n_failed == 0 and res.out == out and set(pd.read_parquet(out).Metadata_ImageId) == {"x", "y"}
    assert not (tmp_path / "e.errors.csv").exists()


def test_cli_all_failed_exits_1_without_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _sized(tmp_path / "src", {"x": (8, 8)})
    rc = main(["embed", str(src), "--model", "random:chada_vit_nano", "--out", str(tmp_path / "e.parquet"),
               "--no-progress", "--workers", "0"])
    assert rc == 1 and "no rows written" in capsys.readouterr().err
    assert not (tmp_path / "e.parquet").exists()


def test_csv_with_every_file_missing_is_an_error(tmp_path: Path, tiny_model) -> None:
    (tmp_path / "list.csv").write_text("FileName_DNA,FileName_Actin\nmissing1.tif,missing2.tif\nm3.tif,m4.tif\n")
    with pytest.raises(ChadavitError, match=r"none of the 4 file\(s\) it lists exists \(first: .*missing1.tif\)"):
        run_embed(cfg(tmp_path / "list.csv", tmp_path / "e.parquet"), model=tiny_model)
    assert _outputs(tmp_path) == []
    # one file present: the run goes ahead and the missing ones are per-image errors
    tifffile.imwrite(tmp_path / "missing1.tif", blobs(64, 64, 3, 0))
    tifffile.imwrite(tmp_path / "missing2.tif", blobs(64, 64, 3, 1))
    res = run_embed(cfg(tmp_path / "list.csv", tmp_path / "e.parquet"), model=tiny_model)
    assert res.n_computed == 1 and res.n_failed == 1
