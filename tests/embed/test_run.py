"""End-to-end embedding runs: real images, schema, resume, errors table, nucleus crops, OME-Zarr and CSV inputs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tifffile
import torch

from chadavit.cli.main import main
from chadavit.data.ome_zarr import write_ome_zarr_plate
from chadavit.embed import EmbedConfig, EmbedError, run_embed

from .conftest import CP, HUMAN_PATTERN, blobs


def cfg(inp: Path, out: Path, **kw) -> EmbedConfig:  # noqa: ANN003
    kw.setdefault("progress", False)
    kw.setdefault("model", "random:chada_vit_nano")  # recorded in the settings; the tests pass the model object
    kw.setdefault("workers", 1)
    return EmbedConfig(input=str(inp), out=str(out), **kw)


def features(df: pd.DataFrame, prefix: str) -> np.ndarray:
    return df[[c for c in df.columns if c.startswith(prefix + "_")]].to_numpy()


def test_real_images_of_1_to_3_channels_uint8_uint16_and_sizes(shared_dir: Path, tmp_path: Path, tiny_model) -> None:
    """One run over real fields with 1, 2 and 3 channels, uint8 and uint16, four different sizes."""
    from chadavit import DatasetWriter
    from chadavit.data.readers import read_image_file

    cp = shared_dir / CP
    images = {
        "human": ([cp / "ExampleHuman" / f"AS_09125_050116030001_D03f00d{k}.tif" for k in range(3)],
                  ["DNA", "PH3", "Cell"]),
        "coloc": ([cp / "ExampleColocalization" / f"0_1_N_{c}.png" for c in "GR"], ["Stain1", "Stain2"]),
        "speckles": ([cp / "ExampleSpeckles" / f"1-162hr{c}2.tif" for c in ("hoe", "h2ax")], ["DNA", "H2AX"]),
        "comet": ([cp / "ExampleCometAssay" / "NoTails.tif"], ["DNA"]),
    }
    dtypes = {}
    with DatasetWriter(tmp_path / "ds") as w:
        for name, (files, chans) in images.items():
            arr = np.concatenate([read_image_file(f) for f in files])
            dtypes[name] = (arr.dtype.name, arr.shape)
            w.add(arr, name, chans, source=str(files[0]))
    assert {d for d, _ in dtypes.values()} == {"uint8", "uint16"}
    res = run_embed(cfg(tmp_path / "ds", tmp_path / "emb.parquet", crop_size=512, batch_size=8), model=tiny_model)
    assert res.n_failed == 0 and res.n_computed == 4
    df = pd.read_parquet(res.out)
    d = tiny_model.config.embed_dim
    assert features(df, "cls").shape == (len(df), d) and features(df, "meanpatch").shape == (len(df), d)
    assert np.isfinite(features(df, "cls")).all()
    per_image = df.groupby("Metadata_ImageId").agg(n=("Metadata_CropIndex", "size"), ch=("Metadata_Channels", "first"),
                                                   h=("Metadata_ImageHeight", "first"))
    assert per_image.loc["human", "n"] == 1 and per_image.loc["human", "ch"] == "DNA,PH3,Cell"
    assert per_image.loc["coloc", "n"] == 3 * 3 and per_image.loc["coloc", "h"] == 1040  # 1040x1392 -> 3x3 tiles
    assert per_image.loc["comet", "ch"] == "DNA"
    # crops are distinct inputs: their embeddings differ
    coloc = features(df[df.Metadata_ImageId == "coloc"], "cls")
    assert np.abs(coloc[0] - coloc[1]).max() > 1e-4


def test_output_schema_h5ad_and_attention(shared_dir: Path, tmp_path: Path, tiny_model) -> None:
    out = tmp_path / "human.parquet"
    res = run_embed(cfg(shared_dir / CP / "ExampleHuman", out, pattern=HUMAN_PATTERN, channel_map="0=DNA,1=PH3,2=Cell",
                        crop_size=128, save_attention=1, attention_crops=2, h5ad=str(tmp_path / "human.h5ad")),
                    model=tiny_model)
    table = pq.read_table(out)
    names = table.column_names
    assert names[:5] == ["Metadata_ImageId", "Metadata_ImageIndex", "Metadata_Plate", "Metadata_Well", "Metadata_Site"]
    meta = [n for n in names if n.startswith("Metadata_")]
    assert names[: len(meta)] == meta  # metadata first, then features
    for col in ("Metadata_Source", "Metadata_Channels", "Metadata_SourceChannels", "Metadata_CropY0",
                "Metadata_CropX1"):
        assert col in names
    d = tiny_model.config.embed_dim
    assert names[len(meta):] == [f"cls_{j}" for j in range(d)] + [f"meanpatch_{j}" for j in range(d)] + [
        f"chan_{c}_{j}" for c in ("DNA", "PH3", "Cell") for j in range(d)]
    assert str(table.schema.field("cls_0").type) == "float"
    assert str(table.schema.field("Metadata_CropY0").type) == "int64"
    df = table.to_pandas()
    assert len(df) == 16 and set(df.Metadata_Well) == {"D03"} and set(df.Metadata_Plate) == {"AS_09125_050116030001"}
    assert df.Metadata_SourceChannels.iloc[0] == "0,1,2" and df.Metadata_Channels.iloc[0] == "DNA,PH3,Cell"
    assert (df.Metadata_CropY1 - df.Metadata_CropY0 == 128).all()
    assert b"chadavit.embed" in (table.schema.metadata or {})
    pngs = sorted(p.name for p in (tmp_path / "human_attention").rglob("*.png"))
    assert pngs == [f"crop000{k}_{j}_{c}.png" for k in range(2) for j, c in enumerate(["DNA", "PH3", "Cell"])]
    assert not (tmp_path / "human.parquet.parts").exists()  # cleaned after a complete run
    anndata = pytest.importorskip("anndata", reason="anndata (optional) not installed")
    ad = anndata.read_h5ad(res.h5ad_path)
    assert ad.shape == (16, d) and np.allclose(ad.obsm["X_meanpatch"], features(df, "meanpatch"))
    assert np.allclose(ad.obsm["X_chan_PH3"], df[[f"chan_PH3_{j}" for j in range(d)]].to_numpy())
    assert list(ad.obs["Metadata_Well"].astype(str).unique()) == ["D03"]


def test_resume_after_interruption_recomputes_nothing_and_gives_the_same_output(plate_folder: Path, tmp_path: Path,
                                                                                tiny_model) -> None:
    kw = dict(pattern="{well}_s{site}_{channel}.tif", channel_map="w1=DNA,w2=Actin", part_size=1, batch_size=4)
    full = run_embed(cfg(plate_folder, tmp_path / "full.parquet", **kw), model=tiny_model)
    assert full.n_computed == 6

    class Stop(Exception):
        pass

    def stop_after(k: int):  # noqa: ANN202
        def cb(n: int) -> None:
            if n >= k:
                raise Stop
        return cb

    out = tmp_path / "resumed.parquet"
    with pytest.raises(Stop):
        run_embed(cfg(plate_folder, out, **kw), model=tiny_model, progress_callback=stop_after(2))
    assert not out.exists() and (tmp_path / "resumed.parquet.parts").is_dir()
    calls = []
    hook = tiny_model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    try:
        res = run_embed(cfg(plate_folder, out, **kw), model=tiny_model)
    finally:
        hook.remove()
    assert res.n_done_before == 2 and res.n_computed == 4
    assert sum(calls) == 4 * 4  # 4 remaining images x 4 crops (96x80 -> 2x2 tiles of 64): nothing recomputed
    a, b = (pd.read_parquet(p) for p in (tmp_path / "full.parquet", out))  # same rows in the same order
    meta = [c for c in a.columns if c.startswith("Metadata_")]
    pd.testing.assert_frame_equal(a[meta], b[meta])
    np.testing.assert_allclose(features(a, "cls"), features(b, "cls"), rtol=1e-4, atol=1e-5)
    assert list(a.Metadata_Well.unique()) == ["A01", "A02", "A03", "B01", "B02", "B03"]


def test_resume_refuses_changed_settings(plate_folder: Path, tmp_path: Path, tiny_model) -> None:
    out = tmp_path / "e.parquet"

    def boom(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_embed(cfg(plate_folder, out, pattern="{well}_s{site}_{channel}.tif"), model=tiny_model,
                  progress_callback=boom)
    with pytest.raises(EmbedError, match="different settings.*crop_size"):
        run_embed(cfg(plate_folder, out, pattern="{well}_s{site}_{channel}.tif", crop_size=32), model=tiny_model)


def test_bad_images_go_to_the_errors_table_and_the_run_goes_on(plate_folder: Path, tmp_path: Path) -> None:
    (plate_folder / "A02_s1_w2.tif").unlink()  # a missing channel
    (plate_folder / "A03_s1_w2.tif").write_bytes(b"II*\x00 this is not a tiff")  # unreadable
    tifffile.imwrite(plate_folder / "B01_s1_w2.tif", blobs(50, 50, 2, 0))  # size differs from w1 (96x80)
    out = tmp_path / "emb.parquet"
    argv = ["embed", str(plate_folder), "--pattern", "{well}_s{site}_{channel}.tif", "--model", "random:chada_vit_nano",
            "--out", str(out), "--no-progress", "--channel-map", "w1=DNA,w2=Actin"]
    assert main(argv) == 1
    err = pd.read_csv(tmp_path / "emb.errors.csv")
    assert sorted(err.image_id) == ["A02_1", "A03_1", "B01_1"]
    msg = dict(zip(err.image_id, err.message))
    assert "missing channel" in msg["A02_1"] and "w2" in msg["A02_1"]
    assert "A03_s1_w2.tif" in msg["A03_1"] and "unreadable" in msg["A03_1"]
    assert "differ in size" in msg["B01_1"]
    assert sorted(pd.read_parquet(out).Metadata_Well.unique()) == ["A01", "B02", "B03"]
    # fix the inputs and rerun: only the three failed images are embedded, the errors table disappears
    for w in ("A02", "A03", "B01"):
        tifffile.imwrite(plate_folder / f"{w}_s1_w2.tif", blobs(96, 80, 2, 0))
    assert main(argv) == 0
    assert not (tmp_path / "emb.errors.csv").exists()
    df = pd.read_parquet(out)
    assert df.Metadata_ImageId.nunique() == 6 and not (tmp_path / "emb.parquet.parts").exists()
    assert main(argv) == 2  # finished output: refuse to recompute without --overwrite


def test_nucleus_crops_land_on_nuclei_end_to_end(shared_dir: Path, tmp_path: Path, tiny_model) -> None:
    root = shared_dir / "data" / "stardist_dsb2018_nuclei"
    mask = tifffile.imread(root / "mask2d.tif")
    res = run_embed(cfg(root / "img2d.tif", tmp_path / "n.parquet", crops="nuclei", crop_size=48, channels="DNA",
                        batch_size=64), model=tiny_model)
    df = pd.read_parquet(res.out)
    assert len(df) > 90 and set(df.Metadata_CropMode) == {"nuclei"}
    cy = ((df.Metadata_CropY0 + df.Metadata_CropY1) // 2).to_numpy()
    cx = ((df.Metadata_CropX0 + df.Metadata_CropX1) // 2).to_numpy()
    assert np.mean(mask[cy.clip(0, 511), cx.clip(0, 511)] > 0) > 0.95
    assert np.allclose(df.Metadata_NucleusY, cy, atol=1) and (df.Metadata_NucleusArea >= 30).all()


def test_ome_zarr_plate_and_csv_inputs_per_image(tmp_path: Path, tiny_model) -> None:
    fields = {(r, c, f): np.stack([blobs(70, 70, 4, c * 10 + f), blobs(70, 70, 2, 50 + c)])
              for r in "AB" for c in (1, 2) for f in (0, 1)}
    write_ome_zarr_plate(tmp_path / "plate.ome.zarr", fields, ["DNA", "Actin"], name="P7")
    res = run_embed(cfg(tmp_path / "plate.ome.zarr", tmp_path / "z.parquet", per_image=True), model=tiny_model)
    df = pd.read_parquet(res.out)
    assert len(df) == 8 and set(df.Metadata_Plate) == {"P7"} and (df.Metadata_NumCrops == 4).all()
    assert sorted(set(zip(df.Metadata_Well, df.Metadata_Site)))[:3] == [("A01", "0"), ("A01", "1"), ("A02", "0")]
    # per-image rows are the mean of the crop rows
    crops = run_embed(cfg(tmp_path / "plate.ome.zarr", tmp_path / "zc.parquet"), model=tiny_model)
    dc = pd.read_parquet(crops.out)
    first = features(dc[dc.Metadata_ImageIndex == 0], "cls").mean(0)
    np.testing.assert_allclose(features(df[df.Metadata_ImageIndex == 0], "cls")[0], first, rtol=1e-4, atol=1e-5)
    # the same fields listed by a CSV (one column of paths per channel)
    (tmp_path / "tif").mkdir()
    lines = ["image_id,Metadata_Well,Actin,DNA"]
    for (r, c, f), img in fields.items():
        for k, ch in enumerate(["DNA", "Actin"]):
            tifffile.imwrite(tmp_path / "tif" / f"{r}{c}_{f}_{ch}.tif", img[k])
        lines.append(f"{r}{c}_{f},{r}{c:02d},tif/{r}{c}_{f}_Actin.tif,tif/{r}{c}_{f}_DNA.tif")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    res = run_embed(cfg(tmp_path / "list.csv", tmp_path / "c.parquet", per_image=True, channels="DNA,Actin"),
                    model=tiny_model)
    dcsv = pd.read_parquet(res.out)
    assert len(dcsv) == 8 and dcsv.Metadata_Channels.iloc[0] == "DNA,Actin"
    np.testing.assert_allclose(features(dcsv, "cls"), features(df, "cls"), rtol=1e-4, atol=1e-5)


def test_identity_model_warns_about_unknown_channel_names(plate_folder: Path, tmp_path: Path, identity_model,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chadavit.embed"):
        run_embed(cfg(plate_folder, tmp_path / "v.parquet", pattern="{well}_s{site}_{channel}.tif",
                      channel_map="w1=DNA"), model=identity_model)
    msgs = [r.getMessage() for r in caplog.records if r.name == "chadavit.embed" and "vocabulary" in r.getMessage()]
    assert len(msgs) == 1 and "['w2']" in msgs[0] and "DNA" not in msgs[0].split("vocabulary")[0]
    res = run_embed(cfg(plate_folder, tmp_path / "s.parquet", pattern="{well}_s{site}_{channel}.tif",
                        channel_map="w1=DNA", strict_channels=True), model=identity_model)
    assert res.n_failed == 6 and "w2" in res.errors[0]["message"]


def test_too_many_channels_for_the_slots_is_a_per_image_error(tmp_path: Path, tiny_model) -> None:
    tifffile.imwrite(tmp_path / "many.tif", np.stack([blobs(64, 64, 2, k) for k in range(12)]))
    tifffile.imwrite(tmp_path / "ok.tif", np.stack([blobs(64, 64, 2, k) for k in range(3)]), photometric="minisblack")
    res = run_embed(cfg(tmp_path, tmp_path / "m.parquet"), model=tiny_model)
    assert res.n_failed == 1 and res.errors[0]["image_id"] == "many" and "10 channel slots" in res.errors[0]["message"]


def test_cli_rejects_a_bare_preset_and_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tifffile.imwrite(tmp_path / "a.tif", blobs(64, 64, 2, 0))
    out = str(tmp_path / "o.parquet")
    assert main(["embed", str(tmp_path / "a.tif"), "--model", "chada_vit_nano", "--out", out]) == 2
    assert "random:chada_vit_nano" in capsys.readouterr().err
    assert main(["embed", str(tmp_path / "a.tif"), "--model", str(tmp_path / "nope"), "--out", out]) == 2


def test_cli_end_to_end_with_random_preset(shared_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "fly"
    shutil.copytree(shared_dir / CP / "ExampleFly", src)
    out = tmp_path / "fly.parquet"
    rc = main(["embed", str(src), "--pattern", "{plate}_{site}_{channel}.TIF", "--channel-map", "D=DNA,F=Green,R=Red",
               "--channels", "DNA,Red", "--model", "random:chada_vit_nano", "--crops", "full", "--out", str(out),
               "--no-progress", "--device", "auto"])
    assert rc == 0
    df = pd.read_parquet(out)
    assert len(df) == 3 and set(df.Metadata_Channels) == {"DNA,Red"}
    assert set(df.Metadata_Site) == {"POS002", "POS076", "POS218"}
    assert (df.Metadata_ImageHeight == 1006).all() and torch.is_tensor(torch.as_tensor(np.array(features(df, "cls"))))


def test_sigterm_mid_run_then_rerun_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A real interruption: the job is killed with SIGTERM (as batch schedulers do), then the same command resumes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "many"
    src.mkdir()
    for i in range(30):
        tifffile.imwrite(src / f"f{i:03d}.tif", np.stack([blobs(64, 64, 2, i), blobs(64, 64, 1, 99 + i)]))
    out = tmp_path / "m.parquet"
    cmd = [sys.executable, "-m", "chadavit.cli.main", "embed", str(src), "--model", "random:chada_vit_nano",
           "--out", str(out), "--part-size", "2", "--batch-size", "2", "--workers", "0", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "m.parquet.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err and not out.exists()
    # the same command again (in this process, to save an interpreter start): it resumes
    capsys.readouterr()
    assert main(cmd[3:]) == 0
    printed = capsys.readouterr().out
    n_before = int(printed.split("images embedded now, ")[1].split(" from a previous run")[0])
    assert 4 <= n_before < 30
    df = pd.read_parquet(out)
    assert df.Metadata_ImageId.nunique() == 30 and len(df) == 30


def test_float_images_and_nan_pixels(tmp_path: Path, tiny_model) -> None:
    good = blobs(64, 64, 3, 0).astype(np.float32) / 1000
    bad = good.copy()
    bad[5, 5] = np.nan
    tifffile.imwrite(tmp_path / "good.tif", good)
    tifffile.imwrite(tmp_path / "bad.tif", bad)
    res = run_embed(cfg(tmp_path, tmp_path / "f.parquet"), model=tiny_model)
    assert res.n_computed == 1 and res.n_failed == 1
    assert res.errors[0]["image_id"] == "bad" and "NaN" in res.errors[0]["message"]
    err = pd.read_csv(res.errors_path)
    assert list(err.columns) == ["image_id", "image_index", "level", "stage", "error", "message", "sources"]
    assert np.isfinite(features(pd.read_parquet(res.out), "cls")).all()


def test_warns_when_images_list_the_same_channels_in_another_order(tmp_path: Path, tiny_model,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    for name, order in (("a", ["DAPI", "Actin"]), ("b", ["Actin", "DAPI"])):
        tifffile.imwrite(tmp_path / f"{name}.ome.tif", np.stack([blobs(64, 64, 2, 0), blobs(64, 64, 2, 1)]),
                         metadata={"axes": "CYX", "Channel": {"Name": order}})
    with caplog.at_level(logging.WARNING, logger="chadavit.embed"):
        run_embed(cfg(tmp_path, tmp_path / "o.parquet"), model=tiny_model)
    assert any("positional" in r.getMessage() and "['Actin', 'DAPI']" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="chadavit.embed"):
        res = run_embed(cfg(tmp_path, tmp_path / "o2.parquet", channels="DAPI,Actin"), model=tiny_model)
    assert not any("positional" in r.getMessage() for r in caplog.records)
    assert set(pd.read_parquet(res.out).Metadata_SourceChannels) == {"DAPI,Actin"}


def test_channel_typos_are_caught_before_reading(plate_folder: Path, tmp_path: Path, tiny_model,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(EmbedError, match=r"--channels asks for \['Actn'\].*channels found: w1->DNA, w2"):
        run_embed(cfg(plate_folder, tmp_path / "t.parquet", pattern="{well}_s{site}_{channel}.tif",
                      channel_map="w1=DNA", channels="DNA,Actn"), model=tiny_model)
    with caplog.at_level(logging.WARNING, logger="chadavit.embed"):
        run_embed(cfg(plate_folder, tmp_path / "u.parquet", pattern="{well}_s{site}_{channel}.tif",
                      channel_map="w1=DNA,W2=Actin", limit=1), model=tiny_model)
    assert any("--channel-map names ['W2']" in r.getMessage() for r in caplog.records)


def test_nuclei_found_in_a_channel_that_is_not_embedded(shared_dir: Path, tmp_path: Path, tiny_model) -> None:
    """Cells located on DNA, features from the other stains only."""
    res = run_embed(cfg(shared_dir / CP / "ExampleHuman", tmp_path / "h.parquet", pattern=HUMAN_PATTERN,
                        channel_map="0=DNA,1=PH3,2=Cell", channels="PH3,Cell", crops="nuclei", nuclei_channel="DNA",
                        crop_size=64, max_crops_per_image=20), model=tiny_model)
    df = pd.read_parquet(res.out)
    assert res.n_failed == 0 and len(df) == 20 and set(df.Metadata_Channels) == {"PH3,Cell"}
    both = run_embed(cfg(shared_dir / CP / "ExampleHuman", tmp_path / "b.parquet", pattern=HUMAN_PATTERN,
                         channel_map="0=DNA,1=PH3,2=Cell", crops="nuclei", nuclei_channel="DNA", crop_size=64,
                         max_crops_per_image=20), model=tiny_model)
    db = pd.read_parquet(both.out)
    box = ["Metadata_CropY0", "Metadata_CropX0", "Metadata_CropY1", "Metadata_CropX1"]
    assert (df[box].to_numpy() == db[box].to_numpy()).all()  # same cells either way


def test_resume_refuses_other_weights_behind_the_same_model_argument(plate_folder: Path, tmp_path: Path,
                                                                     tiny_model) -> None:
    """Issue 22 item 2: a run folder still training (or an unpinned hf: repo) changed the weights between runs."""
    import copy

    out = tmp_path / "e.parquet"
    kw = dict(pattern="{well}_s{site}_{channel}.tif", part_size=1)

    def stop(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_embed(cfg(plate_folder, out, **kw), model=tiny_model, progress_callback=stop)
    retrained = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(retrained.parameters()).add_(1e-3)
    with pytest.raises(EmbedError, match="other weights.*would mix two models"):
        run_embed(cfg(plate_folder, out, **kw), model=retrained)
    res = run_embed(cfg(plate_folder, out, **kw), model=tiny_model)  # the same weights resume
    assert res.n_done_before >= 1 and res.n_failed == 0
    digest = json.loads(pq.read_schema(out).metadata[b"chadavit.embed"])["weights_digest"]
    from chadavit.models.io import weights_digest

    assert digest == weights_digest(tiny_model) != weights_digest(retrained)


def test_a_second_run_on_the_same_output_is_refused_and_stale_temps_removed(plate_folder: Path, tmp_path: Path,
                                                                            tiny_model, capsys) -> None:
    """Issue 22 item 15: two runs on one output crashed one of them; killed merges left hidden temp files."""
    from chadavit.embed.output import lock_output
    from chadavit.locks import LockedError

    out = tmp_path / "e.parquet"
    kw = dict(pattern="{well}_s{site}_{channel}.tif")
    with lock_output(out):  # another run holds the output
        with pytest.raises(LockedError, match="another process .* is writing it"):
            run_embed(cfg(plate_folder, out, **kw), model=tiny_model)
        rc = main(["embed", str(plate_folder), "--out", str(out), "--pattern", kw["pattern"],
                   "--model", "random:chada_vit_nano", "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and "error:" in err and "another process" in err
    stale = [tmp_path / ".e.parquet.tmp-99999", tmp_path / ".e.errors.csv.tmp-99999"]
    for s in stale:
        s.write_bytes(b"x" * 1000)
    keep = tmp_path / ".other.parquet.tmp-99999"
    keep.write_bytes(b"another output's")
    res = run_embed(cfg(plate_folder, out, **kw), model=tiny_model)
    assert res.n_computed == 6 and not any(s.exists() for s in stale) and keep.exists()
