"""`chadavit datasets` against a local mirror: resumed downloads, checksums, 404, and every dataset's layout."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from chadavit.cli.main import main
from chadavit.errors import ChadavitError
from chadavit.evaluation.datasets import load_dataset
from chadavit.evaluation.datasets.checking import check
from chadavit.evaluation.datasets.download import ChecksumError, DownloadError, RetryPolicy, download
from chadavit.evaluation.datasets.fetching import fetch

from .mirror import serve
from .standins import write_bbbc021, write_bbbc048, write_bloodmnist, write_bray

NO_WAIT = RetryPolicy(retries=0, backoff=0.0, timeout=10)


def zip_tree(root: Path, top: Path) -> bytes:
    """A zip of ``top`` with paths relative to ``root`` (so ``top``'s name is the archive's top folder)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(top.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(root).as_posix())
    return buf.getvalue()


def test_interrupted_download_resumes_with_range(tmp_path: Path):
    body = np.random.default_rng(0).bytes(300_000)
    md5 = hashlib.md5(body).hexdigest()
    said: list[str] = []
    with serve() as m:
        m.files["/f.bin"] = body
        m.cut["/f.bin"] = 120_000
        dest = tmp_path / "f.bin"
        with pytest.raises(DownloadError, match="rerun to resume"):
            download(f"{m.url}/f.bin", dest, size=len(body), md5=md5, policy=NO_WAIT, say=said.append, tty=False)
        assert not dest.exists() and (tmp_path / "f.bin.part").stat().st_size == 120_000  # kept, not visible
        download(f"{m.url}/f.bin", dest, size=len(body), md5=md5, policy=NO_WAIT, say=said.append, tty=False)
        assert m.log[-1] == ("/f.bin", "bytes=120000-")
        # within one call, a retry resumes too
        m.cut["/f.bin"] = 50_000
        dest2 = tmp_path / "g.bin"
        download(f"{m.url}/f.bin", dest2, md5=md5, policy=RetryPolicy(retries=2, backoff=0.0), say=said.append,
                 tty=False)
        assert m.log[-1] == ("/f.bin", "bytes=50000-")
    assert dest.read_bytes() == body and dest2.read_bytes() == body
    assert not (tmp_path / "f.bin.part").exists()
    assert any("%" in s and "MB" in s for s in said)  # plain progress lines when not on a terminal


def test_retries_after_503_and_restarts_when_range_is_ignored(tmp_path: Path):
    body = np.random.default_rng(1).bytes(100_000)
    said: list[str] = []
    with serve() as m:
        m.files["/f.bin"] = body
        m.fail["/f.bin"] = 2
        download(f"{m.url}/f.bin", tmp_path / "a.bin", size=len(body), policy=RetryPolicy(retries=2, backoff=0.0),
                 say=said.append, tty=False)
        assert [s for s in said if s.startswith("  retrying")] and len(m.log) == 3
        (tmp_path / "b.bin.part").write_bytes(body[:1000])  # a server without Range support: start over
        m.ignore_range = True
        download(f"{m.url}/f.bin", tmp_path / "b.bin", size=len(body), policy=NO_WAIT, say=said.append, tty=False)
        m.fail["/f.bin"] = 5
        with pytest.raises(DownloadError, match="failed after 2 attempts"):
            download(f"{m.url}/f.bin", tmp_path / "c.bin", policy=RetryPolicy(retries=1, backoff=0.0),
                     say=said.append, tty=False)
    assert (tmp_path / "a.bin").read_bytes() == body and (tmp_path / "b.bin").read_bytes() == body


def test_checksum_mismatch_keeps_nothing(tmp_path: Path):
    npz = write_bloodmnist(tmp_path / "src")
    with serve() as m:
        m.files["/bloodmnist/bloodmnist.npz"] = npz.read_bytes()  # not the published file: its MD5 differs
        with pytest.raises(ChecksumError, match="does not match the published 7053d0359d879ad8a5505303e11de1dc"):
            fetch("bloodmnist", tmp_path / "data", base_url=m.url, policy=NO_WAIT, say=lambda s: None)
    left = sorted(p.name for p in (tmp_path / "data" / "bloodmnist").iterdir())
    assert "bloodmnist.npz" not in left and not any(n.endswith(".part") for n in left)


def test_404_is_a_clear_error(tmp_path: Path):
    with serve() as m:
        with pytest.raises(DownloadError, match=r"BBBC048v1.zip: HTTP 404"):
            fetch("bbbc048", tmp_path / "data", base_url=m.url, policy=RetryPolicy(retries=3, backoff=0.0),
                  say=lambda s: None)
        assert len(m.log) == 1  # a 404 is not retried


def test_fetch_bloodmnist_verified(tmp_path: Path, monkeypatch):
    import importlib

    F = importlib.import_module("chadavit.evaluation.datasets.bloodmnist")

    npz = write_bloodmnist(tmp_path / "src")
    monkeypatch.setitem(F.BLOODMNIST_MD5, 28, hashlib.md5(npz.read_bytes()).hexdigest())
    with serve() as m:
        m.files["/bloodmnist/bloodmnist.npz"] = npz.read_bytes()
        target = fetch("bloodmnist", tmp_path / "data", base_url=m.url, policy=NO_WAIT, say=lambda s: None)
        fetch("bloodmnist", tmp_path / "data", base_url=m.url, policy=NO_WAIT, say=lambda s: None)
        assert len(m.log) == 1  # the verified file is not downloaded again
    assert "train 16, val 4, test 8" in check("bloodmnist", target)
    assert len(load_dataset("bloodmnist", path=target)) == 28


def test_cli_fetch_through_a_mirror(tmp_path: Path, monkeypatch, capsys):
    import importlib

    F = importlib.import_module("chadavit.evaluation.datasets.bloodmnist")
    npz = write_bloodmnist(tmp_path / "src")
    monkeypatch.setitem(F.BLOODMNIST_MD5, 28, hashlib.md5(npz.read_bytes()).hexdigest())
    with serve() as m:
        m.files["/bloodmnist/bloodmnist.npz"] = npz.read_bytes()
        rc = main(["datasets", "fetch", "bloodmnist", "--root", str(tmp_path / "data"), "--base-url", m.url,
                   "--retries", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "bloodmnist: bloodmnist.npz: train 16" in out
    assert f"ready: chadavit eval --suite paper --set data_root={tmp_path / 'data'}" in out
    assert (tmp_path / "data" / "bloodmnist" / "bloodmnist.npz").is_file()


def test_fetch_bbbc048_nested_zip(tmp_path: Path, shared_dir: Path):
    src = tmp_path / "src"
    write_bbbc048(src, shared_dir)
    inner = zip_tree(src, src / "CellCycle")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("BBBC048v1/CellCycle.zip", inner)
        z.writestr("BBBC048v1/readme.txt", "stand-in")
    with serve() as m:
        m.files["/bbbc048/BBBC048v1.zip"] = outer.getvalue()
        target = fetch("bbbc048", tmp_path / "data", base_url=m.url, policy=NO_WAIT, say=lambda s: None)
    assert (target / "CellCycle" / "G1").is_dir() and not (target / ".downloads").exists()
    assert "18 of them in the official ChAda-ViT split" in check("bbbc048", target)
    assert len(load_dataset("bbbc048", path=target, size=32)) == 18


def test_fetch_bbbc021_subset_plate_zips(tmp_path: Path, shared_dir: Path):
    src = tmp_path / "src"
    fields = write_bbbc021(src, shared_dir)
    plates = sorted(fields["Image_Metadata_Plate_DAPI"].unique())
    week1 = [p for p in plates if p.startswith("Week1_")]
    with serve() as m:
        for name in ("BBBC021_v1_image.csv", "BBBC021_v1_moa.csv"):
            m.files[f"/bbbc021/{name}"] = (src / name).read_bytes()
        for p in plates:
            m.files[f"/bbbc021/BBBC021_v1_images_{p}.zip"] = zip_tree(src, src / p)  # unzips to Week1_22123/
        target = fetch("bbbc021", tmp_path / "data", base_url=m.url, subset=["Week1"], policy=NO_WAIT,
                       say=lambda s: None, yes=True)  # two real plates would be ~1.5 GB: confirmed
        assert sorted(p.name for p in target.iterdir() if p.is_dir()) == week1
        with pytest.raises(ChadavitError, match="unknown plates/weeks"):
            fetch("bbbc021", tmp_path / "data", base_url=m.url, subset=["Week99"], policy=NO_WAIT, say=lambda s: None)
    assert check("bbbc021", target).startswith(f"{len(week1)} of {len(plates)} plates present")
    d = load_dataset("bbbc021", path=target, crop=32, cells_per_field=1, size=None)
    assert set(d.labels["plate"]) == set(week1)


def test_fetch_bray_subset_from_cil_zips(tmp_path: Path, shared_dir: Path):
    src = tmp_path / "src"
    wells = write_bray(src, shared_dir)
    with serve() as m:
        for f in (src / "metadata").rglob("*"):
            if f.is_file():
                m.files[f"/bray/{f.relative_to(src).as_posix()}"] = f.read_bytes()
        for d in (src / "images").iterdir():
            m.files[f"/bray/images/{d.name}.zip"] = zip_tree(src / "images", d)
        target = fetch("bray", tmp_path / "data", base_url=m.url, subset=["24277"], policy=NO_WAIT,
                       say=lambda s: None, yes=True)  # a real plate is ~7.6 GB: confirmed
    assert sorted(p.name for p in (target / "images").iterdir()) == sorted(
        f"24277-{c}" for c in ("Hoechst", "ERSyto", "ERSytoBleed", "Ph_golgi", "Mito"))
    n_sites = int((wells["plate"] == "24277").sum())
    assert check("bray", target).startswith(f"{n_sites} sites with five channels on 1 plate(s)")


def test_manual_datasets_print_steps(tmp_path: Path, capsys):
    fetch("cyclops", tmp_path, say=print)
    out = capsys.readouterr().out
    assert "DeepLoc_full_datasets.zip" in out and "unpackage_test_set.py" in out and "datasets check cyclops" in out
    target = fetch("nfkb", tmp_path, say=print)
    out = capsys.readouterr().out
    assert "Zenodo record 8287453" in out
    csv = (target / "analyse_256x256" / "single_ratio_images_train.csv").read_text().splitlines()
    assert csv[0] == "cat,image_name,ratio" and len(csv) == 8458  # the official targets, written for the user


def test_cli_list_and_check(tmp_path: Path, capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("bbbc021", "bbbc048", "bloodmnist", "cyclops", "nfkb", "bray"):
        assert f"\n{name}" in "\n" + out
    assert "CC BY 4.0" in out and "CC0 1.0" in out
    (tmp_path / "ER").mkdir()
    assert main(["datasets", "check", "cyclops", str(tmp_path)]) == 2
    assert "no class folder holds" in capsys.readouterr().err
    assert main(["datasets", "fetch", "imagenet", "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err


def test_fetch_bray_plate_from_idr_with_the_idr_client(tmp_path: Path, shared_dir: Path):
    import tifffile
    from idr.emulator import IDREmulator, render

    src = tmp_path / "src"
    write_bray(src, shared_dir)
    labels = ["ERSyto", "ERSytoBleed", "Hoechst", "Mito", "Ph_golgi"]  # IDR's (alphabetical) channel order
    rng = np.random.default_rng(7)
    with serve() as m, IDREmulator() as emu:
        for f in (src / "metadata").rglob("*"):
            if f.is_file():
                m.files[f"/bray/{f.relative_to(src).as_posix()}"] = f.read_bytes()
        imgs = [emu.add_image(rng.integers(0, 4000, (5, 48, 48), dtype=np.uint16), labels=labels) for _ in range(3)]
        sid = emu.add_screen("idr0016-wawer-bioactivecompoundprofiling/screenA", [[[imgs[0], imgs[1]], [imgs[2]]]])
        emu.world.plates[emu.world.screens[sid]["plates"][0]]["name"] = "24277"
        target = fetch("bray", tmp_path / "data", base_url=m.url, subset=["24277"], source="idr", idr_url=emu.url,
                       policy=NO_WAIT, say=lambda s: None, yes=True)
    hoechst = sorted(p.name for p in (target / "images" / "24277-Hoechst").iterdir())
    assert hoechst == [f"cdp2bioactives_a01_s1_w1idr{imgs[0].id}.tif", f"cdp2bioactives_a01_s2_w1idr{imgs[1].id}.tif",
                       f"cdp2bioactives_a02_s1_w1idr{imgs[2].id}.tif"]
    got = tifffile.imread(target / "images" / "24277-Hoechst" / hoechst[0])
    assert np.array_equal(got, render(imgs[0].data[2, 0], *imgs[0].window(2)))  # Hoechst is IDR's third channel
    assert check("bray", target).startswith("3 sites with five channels on 1 plate(s)")


@pytest.mark.parametrize("hostile", ["../../../evil", "/tmp/evil-abs", "..", "a/b", "C:evil"])
def test_a_mirror_cannot_write_outside_the_target(tmp_path: Path, hostile: str):
    """Issue 22 item 8: plate names from the server's table became folders three levels up."""
    from chadavit.evaluation.datasets.extract import UnsafePathError

    work = tmp_path / "a" / "b" / "c"
    with serve() as m:
        m.files["/bbbc021/BBBC021_v1_image.csv"] = f"Image_Metadata_Plate_DAPI\n{hostile}\n".encode()
        m.files["/bbbc021/BBBC021_v1_moa.csv"] = b"compound,moa\n"
        m.files[f"/bbbc021/BBBC021_v1_images_{hostile}.zip"] = zip_tree(tmp_path, tmp_path)
        with pytest.raises(UnsafePathError, match=r"BBBC021_v1_image\.csv: plate: .* is not a plain file name"):
            fetch("bbbc021", work / "data", base_url=m.url, policy=NO_WAIT, say=lambda s: None)
        table = f"Assay_Plate_Barcode,Plate_Map_Name\n24277,{hostile}\n"
        m.files["/bray/metadata/barcode_platemap.csv"] = table.encode()
        m.files["/bray/metadata/CDRP_MOA_MATCHES_official.csv"] = b"x\n"
        m.files[f"/bray/metadata/platemap/{hostile}.txt"] = b"#!/bin/sh\n"
        with pytest.raises(UnsafePathError, match=r"barcode_platemap\.csv: plate map: .* is not a plain file name"):
            fetch("bray", work / "data", base_url=m.url, policy=NO_WAIT, say=lambda s: None)
    made = {p for p in tmp_path.rglob("*")}
    assert all(work / "data" in p.parents or p in (work, work / "data") or p in work.parents for p in made), made


def test_downloads_and_archive_members_stay_inside(tmp_path: Path):
    from chadavit.evaluation.datasets.extract import UnsafePathError, inside, safe_extract
    from chadavit.evaluation.datasets.fetching import Fetch

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="would be written outside"):
        inside(tmp_path / "t", tmp_path / "t" / "link" / "x", "test")
    with pytest.raises(UnsafePathError, match="would be written outside"):
        Fetch("bbbc021", tmp_path / "t").get("http://127.0.0.1:9/x", "x", tmp_path / "t" / ".." / "x")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../up.txt", "x")
    (tmp_path / "bad.zip").write_bytes(buf.getvalue())
    with pytest.raises(UnsafePathError, match=r"member '\.\./up\.txt'"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "t" / "out")
    assert not (tmp_path / "t" / "up.txt").exists()


def test_a_trickling_server_is_given_up_on_and_resumed(tmp_path: Path):
    """Issue 22 item 11: a 1-byte/s server kept `datasets fetch` waiting forever (no socket timeout ever fires)."""
    import time

    body = bytes(range(256)) * 8
    policy = RetryPolicy(retries=1, backoff=0.0, timeout=10, stall_seconds=0.4, stall_bytes=1000)
    with serve() as m:
        m.files["/f.bin"] = body
        m.trickle["/f.bin"] = 0.02  # 50 bytes/s
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match=r"failed after 2 attempts \(StalledError: .*stalled, \d+ bytes in"):
            download(m.url + "/f.bin", tmp_path / "f.bin", size=len(body), policy=policy, say=lambda s: None)
        assert time.monotonic() - t0 < 5
        kept = (tmp_path / "f.bin.part").stat().st_size
        assert 0 < kept < len(body)
        del m.trickle["/f.bin"]  # the server recovers: the rerun resumes from the bytes kept
        download(m.url + "/f.bin", tmp_path / "f.bin", size=len(body), policy=policy, say=lambda s: None)
        assert (tmp_path / "f.bin").read_bytes() == body and m.log[-1][1] == f"bytes={kept}-"
