"""The download: exact content, faults, failures and re-runs, crash + resume, shards + merge, stats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chadavit.cli.main import main
from chadavit.data.dataset import open_dataset
from chadavit.idr.builder import FAILURES_FILE, build, image_key, parse_shard, resize_plane, shard_plan
from chadavit.data.idr_client import RetryPolicy
from chadavit.idr.plan import make_plan

from .conftest import QUALIFYING, SIZE, N, make_client
from .emulator import IDREmulator

CLI_FAST = ["--timeout", "0.5", "--backoff", "0.01", "--max-backoff", "0.05", "--no-progress"]


def _cli_build(emu: IDREmulator, out: Path, *extra: str) -> int:
    return main(["idr", "build", "--server", emu.url, "--per-study", str(N), "--seed", "0", "--size", str(SIZE),
                 "--workers", "2", "--out", str(out), "--zarr-base", emu.url + "/zarr/v0.1",
                 "--zarr-studies", "idr0103", *CLI_FAST, *extra])


def _assert_matches_emulator(emu: IDREmulator, path: Path) -> pd.DataFrame:
    """Every stored image equals what the emulator served, after the same resize."""
    ds = open_dataset(path)
    m = ds.manifest
    assert m["image_id"].is_unique
    for i, row in m.iterrows():
        served = emu.served(int(row["idr_image_id"]))
        expected = np.stack([resize_plane(p, SIZE) for p in served])
        got = ds.read(i)
        assert got.dtype == expected.dtype and got.shape == (served.shape[0], SIZE, SIZE)
        np.testing.assert_array_equal(got, expected, err_msg=str(row["image_id"]))
        img = emu.world.images[int(row["idr_image_id"])]
        assert list(row["channel_names"]) == img.labels
        assert (row["original_height"], row["original_width"]) == served.shape[1:]
    assert ds.verify() == []
    return m


def _snapshot(path: Path) -> dict[str, tuple[str, str, tuple]]:
    ds = open_dataset(path)
    return {r.image_id: (r.checksum, r.study, tuple(r.channel_names)) for r in ds.manifest.itertuples()}


def test_build_under_faults_is_exact(tmp_path: Path) -> None:
    with IDREmulator(max_limit=3, slow_seconds=0.8, fault_rate=0.12, seed=5) as emu:
        from .conftest import populate

        populate(emu)
        client = make_client(emu)
        plan = make_plan(client, per_study=N, seed=0)
        res = build(plan.images, tmp_path / "ds", client, size=SIZE, workers=3, progress=False, flush_every=4)
        assert res.ok and res.written == 3 * N and client.retries_made > 0
        faults = {o for _, o in emu.log} - {"ok"}
        assert {"500", "429", "truncated", "corrupt"} <= faults or len(faults) >= 4
        assert not emu.errors
    m = _assert_matches_emulator(emu, tmp_path / "ds")
    assert m.groupby("study").size().to_dict() == {s: N for s in QUALIFYING}
    for col in ("study", "original_height", "original_width", "pixel_type", "idr_image_id", "container",
                "pixel_source", "imaging_method", "checksum"):
        assert col in m.columns
    src = m.set_index("study")["pixel_source"]
    assert set(src.loc["idr0103-gamma"]) == {"raw_zarr"} and set(src.loc["idr0101-alpha"]) == {"rendered_8bit"}
    assert set(m[m.study == "idr0103-gamma"]["dtype"]) == {"uint16"}
    assert not (tmp_path / "ds" / FAILURES_FILE).exists()


def test_failures_are_recorded_and_rerun_fills_the_gap(emu: IDREmulator, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    plan = make_plan(make_client(emu), per_study=N, seed=0).images
    victim = int(plan[plan.study == "idr0101-alpha"]["image_id"].iloc[0])
    emu.broken.add(victim)  # its renders are always corrupt PNGs
    assert _cli_build(emu, out, "--retries", "2") == 1
    err = capsys.readouterr().err
    assert str(victim) in err and "failures recorded" in err
    fails = pd.read_csv(out / FAILURES_FILE)
    assert fails["image_id"].tolist() == [victim] and "undecodable" in fails["error"].iloc[0]
    assert len(open_dataset(out)) == 3 * N - 1
    emu.broken.clear()
    renders_before = sum(p.startswith("/webgateway/render_image/") for p, _ in emu.log)
    assert _cli_build(emu, out, "--retries", "2") == 0
    renders = sum(p.startswith("/webgateway/render_image/") for p, _ in emu.log) - renders_before
    assert renders == emu.world.images[victim].c  # only the missing image was fetched again
    assert not (out / FAILURES_FILE).exists()
    m = _assert_matches_emulator(emu, out)
    assert len(m) == 3 * N and image_key(victim) in set(m["image_id"])
    assert "resuming with the plan saved" in capsys.readouterr().err
    # a re-run with other settings into the same directory is refused instead of mixing two samples
    assert _cli_build(emu, out, "--seed", "1") == 2
    assert "planned with different settings seed=0 (now 1)" in capsys.readouterr().err
    assert main(["idr", "build", "--server", emu.url, "--out", str(out), "--size", "32", *CLI_FAST]) == 2
    assert "--size 16, not 32" in capsys.readouterr().err
    assert len(open_dataset(out)) == 3 * N


def test_crash_then_resume_equals_uninterrupted(emu: IDREmulator, tmp_path: Path) -> None:
    client = make_client(emu)
    plan = make_plan(client, per_study=N, seed=0).images
    build(plan, tmp_path / "ref", client, size=SIZE, workers=2, progress=False)

    def crash(k: int) -> None:
        if k == 7:
            raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        build(plan, tmp_path / "run", client, size=SIZE, workers=2, progress=False, flush_every=3, on_image=crash)
    partial = len(open_dataset(tmp_path / "run"))
    assert 0 < partial < 3 * N
    res = build(plan, tmp_path / "run", client, size=SIZE, workers=2, progress=False)
    assert res.ok and res.already_done == partial and res.written == 3 * N - partial
    assert _snapshot(tmp_path / "run") == _snapshot(tmp_path / "ref")
    _assert_matches_emulator(emu, tmp_path / "run")


def test_killed_process_resumes(emu: IDREmulator, tmp_path: Path) -> None:
    """SIGKILL a real `chadavit idr build` mid-run; the re-run completes the same dataset."""
    out = tmp_path / "ds"
    emu.delay = 0.1
    cmd = [sys.executable, "-m", "chadavit.cli.main", "idr", "build", "--server", emu.url, "--per-study", str(N),
           "--size", str(SIZE), "--workers", "1", "--flush-every", "1", "--out", str(out), *CLI_FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "manifest").glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(open_dataset(out))
    assert 0 < partial < 3 * N
    emu.delay = 0.0
    assert _cli_build(emu, out) == 0
    m = _assert_matches_emulator(emu, out)
    assert len(m) == 3 * N


def test_shards_split_and_merge(emu: IDREmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = make_client(emu)
    plan = make_plan(client, per_study=N, seed=0).images
    parts = [shard_plan(plan, (i, 3)) for i in range(3)]
    ids = [set(p["image_id"]) for p in parts]
    assert sum(len(s) for s in ids) == len(plan) and set().union(*ids) == set(plan["image_id"])
    pd.testing.assert_frame_equal(shard_plan(plan, (1, 3)), parts[1])
    plan_path = tmp_path / "plan.parquet"
    plan.to_parquet(plan_path)
    for i in range(3):
        assert _cli_build(emu, tmp_path / f"s{i}", "--plan", str(plan_path), "--shard", f"{i}/3") == 0
        assert {int(x.split(":")[1]) for x in open_dataset(tmp_path / f"s{i}").manifest["image_id"]} == ids[i]
    assert main(["idr", "merge", *(str(tmp_path / f"s{i}") for i in range(3)), "--out", str(tmp_path / "all")]) == 0
    m = _assert_matches_emulator(emu, tmp_path / "all")
    assert len(m) == len(plan)
    with pytest.raises(ValueError):
        parse_shard("3/3")
    capsys.readouterr()


def test_stats_and_figures(emu: IDREmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    client = make_client(emu)
    build(make_plan(client, per_study=N, seed=0).images, tmp_path / "ds", client, size=SIZE, progress=False)
    capsys.readouterr()
    assert main(["idr", "stats", str(tmp_path / "ds"), "--figures", str(tmp_path / "fig")]) == 0
    text = capsys.readouterr().out
    m = open_dataset(tmp_path / "ds").manifest
    assert f"images: {3 * N}" in text and f"channels: {int(m.n_channels.sum())}" in text
    assert "channel-count histogram" in text and "idr0102-beta: 5" in text
    for name in ("imaging_methods.png", "channel_counts.png"):
        with Image.open(tmp_path / "fig" / name) as im:
            assert im.size[0] > 200 and im.size[1] > 100


def test_real_images(shared_dir: Path, tmp_path: Path) -> None:
    """Real microscopy images (CellProfiler examples) served by the emulator come back exactly."""
    import tifffile
    from PIL import Image

    cp = shared_dir / "data" / "cellprofiler_examples"
    imgs = []
    for pos in ("POS002", "POS076", "POS218"):
        imgs.append(np.stack([tifffile.imread(cp / "ExampleFly" / f"01_{pos}_{c}.TIF")[:400, :360] for c in "DFR"]))
    imgs.append(np.stack([tifffile.imread(cp / "ExampleHuman" / f"AS_09125_050116030001_D03f00d{k}.tif")
                          for k in range(3)]))
    for k in (1, 2):
        # 16-bit PNGs, 1392 x 1040: cropped to keep the test fast
        imgs.append(np.stack([np.asarray(Image.open(cp / "ExampleColocalization" / f"0_{k}_N_{c}.png"))[:320, :300]
                              for c in "GR"]).astype(np.uint16))
    with IDREmulator(max_limit=500) as emu:
        objs = [emu.add_image(a, zarr=(k == 0)) for k, a in enumerate(imgs)]
        emu.add_screen("idr0201-real/screenA", [[[o] for o in objs]])
        client = make_client(emu, zarr_studies={"idr0201"}, policy=RetryPolicy(retries=3, backoff=0.05, timeout=5.0))
        plan = make_plan(client, per_study=N, seed=0).images
        assert len(plan) == N
        res = build(plan, tmp_path / "ds", client, size=SIZE, workers=2, progress=False)
        assert res.ok
        m = _assert_matches_emulator(emu, tmp_path / "ds")
    assert set(m["original_height"]) <= {400, 512, 320}
    assert set(m["pixel_type"]) <= {"uint8", "uint16"}
    expected_source = ["raw_zarr" if i == objs[0].id else "rendered_8bit" for i in m["idr_image_id"]]
    assert m["pixel_source"].tolist() == expected_source
