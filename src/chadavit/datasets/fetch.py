"""`chadavit datasets fetch`: download each dataset from its official address (or a mirror given as
``--base-url``) and lay it out under ``ROOT/<name>`` exactly as its adapter reads it."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from chadavit.atomic import write_bytes_atomic
from chadavit.datasets import catalog as C
from chadavit.datasets.download import RetryPolicy, download
from chadavit.datasets.extract import (
    ArchiveError,
    find_dir,
    find_file,
    inside,
    plain_name,
    publish_dir,
    safe_extract,
    scratch_dir,
)
from chadavit.datasets.manual import manual_steps
from chadavit.errors import ChadavitError

# MD5s published by MedMNIST (medmnist/info.py, v3.0.2) for Zenodo record 10519652
BLOODMNIST_MD5 = {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
                  128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"}


class SubsetError(ChadavitError, ValueError):
    """``--subset`` names something the dataset does not have."""


@dataclass
class Fetch:
    """One fetch: where files go, where they come from, and how to report progress."""

    name: str
    target: Path
    base_url: str | None = None
    subset: Sequence[str] | None = None
    policy: RetryPolicy | None = None
    say: Callable[[str], None] = print
    tty: bool | None = None
    keep_archives: bool = False
    source: str = "cil"  # Bray images: "cil" (Cell Image Library zips) or "idr" (IDR idr0016 via the IDR client)
    wells: Sequence[str] | None = None  # Bray from IDR: only these wells (e.g. A01)
    idr_url: str | None = None

    def url(self, official: str, mirror_path: str) -> str:
        """The official URL, or ``BASE_URL/<dataset>/<mirror_path>`` when a mirror is given."""
        return f"{self.base_url.rstrip('/')}/{self.name}/{mirror_path}" if self.base_url else official

    def get(self, official: str, mirror_path: str, dest: Path, size: int | None = None, md5: str | None = None) -> Path:
        url = self.url(official, mirror_path)
        inside(self.target, dest, url)  # every download lands under the dataset's folder, whatever a table said
        self.say(f"fetch {url} -> {dest}")
        return download(url, dest, size=size, md5=md5, policy=self.policy, say=self.say, tty=self.tty)

    @property
    def downloads(self) -> Path:
        return self.target / ".downloads"

    def done_with(self, archive: Path) -> None:
        if not self.keep_archives:
            archive.unlink(missing_ok=True)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


# ---------------------------------------------------------------------------------------------- per dataset
def fetch_bloodmnist(f: Fetch) -> None:
    from chadavit.evaluation.datasets.bloodmnist import SIZES, npz_name

    sizes = [int(s) for s in (f.subset or ["28"])]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        raise SubsetError(f"bloodmnist: --subset takes image sizes {list(SIZES)}, got {bad}")
    for s in sizes:
        name = npz_name(s)
        f.get(f"{C.ZENODO_MEDMNIST}{name}?download=1", name, f.target / name, md5=BLOODMNIST_MD5[s])


def fetch_bbbc021(f: Fetch) -> None:
    for name in ("BBBC021_v1_image.csv", "BBBC021_v1_moa.csv"):
        f.get(C.BBBC021_BASE + name, name, f.target / name)
    table = pd.read_csv(f.target / "BBBC021_v1_image.csv", usecols=["Image_Metadata_Plate_DAPI"])
    plates = [plain_name(p, f"{f.target / 'BBBC021_v1_image.csv'}: plate")
              for p in sorted(table["Image_Metadata_Plate_DAPI"].astype(str).unique())]
    if f.subset:
        wanted = set(f.subset)
        chosen = [p for p in plates if p in wanted or p.split("_")[0] in wanted]
        unknown = wanted - set(chosen) - {p.split("_")[0] for p in chosen}
        if unknown:
            raise SubsetError(f"bbbc021: --subset names unknown plates/weeks {sorted(unknown)}; plates look like "
                              f"{plates[0]}, weeks like Week1")
        plates = chosen
    for i, plate in enumerate(plates, 1):
        if (f.target / plate).is_dir():
            f.say(f"[{i}/{len(plates)}] {plate}: present, skipped")
            continue
        zname = f"BBBC021_v1_images_{plate}.zip"
        f.say(f"[{i}/{len(plates)}] {plate}")
        archive = f.get(C.BBBC021_BASE + zname, zname, f.downloads / zname)
        tmp = scratch_dir(f.target, plate)
        safe_extract(archive, tmp)
        src = find_dir(tmp, plate)
        if src is None:  # files at the top of the zip: put them in the plate folder the adapter expects
            src = tmp / plate
            src.mkdir()
            for p in list(tmp.iterdir()):
                if p.is_file():
                    p.rename(src / p.name)
        if not any(src.glob("*.tif")):
            raise ArchiveError(f"{archive}: no TIFF found for plate {plate}")
        publish_dir(src, f.target / plate)
        shutil.rmtree(tmp, ignore_errors=True)
        f.done_with(archive)


def fetch_bbbc048(f: Fetch) -> None:
    if (f.target / "CellCycle").is_dir():
        f.say(f"{f.target / 'CellCycle'} present, skipped")
        return
    archive = f.get(C.BBBC048_URL, "BBBC048v1.zip", f.downloads / "BBBC048v1.zip")
    tmp = scratch_dir(f.target, "CellCycle")
    safe_extract(archive, tmp / "outer")
    inner = find_file(tmp / "outer", "CellCycle.zip")
    if inner is not None:
        safe_extract(inner, tmp / "inner")
    cc = find_dir(tmp / "inner", "CellCycle") if inner is not None else find_dir(tmp / "outer", "CellCycle")
    if cc is None:
        raise ArchiveError(f"{archive}: no CellCycle/ folder (directly or in CellCycle.zip)")
    publish_dir(cc, f.target / "CellCycle")
    shutil.rmtree(tmp, ignore_errors=True)
    f.done_with(archive)


def fetch_cyclops(f: Fetch) -> None:
    f.say(manual_steps("cyclops", str(f.target)))


def fetch_nfkb(f: Fetch) -> None:
    from chadavit.evaluation.datasets.common import META_DIR

    for part in ("train", "val"):
        name = f"single_ratio_images_{part}.csv"
        with gzip.open(META_DIR / f"nfkb_{name}.gz", "rb") as src:
            _write_bytes(f.target / "analyse_256x256" / name, src.read())
    f.say(manual_steps("nfkb", str(f.target)))


def fetch_bray(f: Fetch) -> None:
    from chadavit.evaluation.datasets.bray import CHANNELS, MOA_FILE

    meta = f.target / "metadata"
    f.get(C.BRAY_METADATA + "barcode_platemap.csv", "metadata/barcode_platemap.csv", meta / "barcode_platemap.csv")
    f.get(C.BRAY_MOA, f"metadata/{MOA_FILE}", meta / MOA_FILE)
    bmap = pd.read_csv(meta / "barcode_platemap.csv", dtype=str)
    where = f"{meta / 'barcode_platemap.csv'}"
    plate_to_map = {plain_name(p, f"{where}: plate"): plain_name(m, f"{where}: plate map")
                    for p, m in zip(bmap["Assay_Plate_Barcode"].str.strip(), bmap["Plate_Map_Name"].str.strip())}
    plates = list(f.subset or [])
    unknown = [p for p in plates if p not in plate_to_map]
    if unknown:
        raise SubsetError(f"bray: --subset names plates {unknown} that barcode_platemap.csv does not list "
                          f"(e.g. {next(iter(plate_to_map))})")
    maps = sorted({plate_to_map[p] for p in plates} if plates else set(plate_to_map.values()))
    for name in maps:
        f.get(C.BRAY_METADATA + f"platemap/{name}.txt", f"metadata/platemap/{name}.txt",
              meta / "platemap" / f"{name}.txt")
    if not plates:
        f.say(manual_steps("bray", str(f.target)))
        return
    if f.source == "idr":
        from chadavit.datasets.bray_idr import fetch_plates_from_idr
        from chadavit.data.idr_client import DEFAULT_SERVER, IDRClient

        client = IDRClient(f.idr_url or DEFAULT_SERVER)
        fetch_plates_from_idr(client, f.target, plates, CHANNELS, wells=f.wells, say=f.say)
        return
    if f.source != "cil":
        raise SubsetError(f"bray: unknown image source {f.source!r}; use cil or idr")
    for i, plate in enumerate(plates, 1):
        for channel in CHANNELS:
            dest = f.target / "images" / f"{plate}-{channel}"
            if dest.is_dir():
                f.say(f"[{i}/{len(plates)}] {dest.name}: present, skipped")
                continue
            zname = f"{plate}-{channel}.zip"
            archive = f.get(C.BRAY_CIL.format(plate=plate, channel=channel), f"images/{zname}", f.downloads / zname)
            tmp = scratch_dir(f.target, dest.name)
            safe_extract(archive, tmp / "x")
            out = tmp / dest.name
            out.mkdir()
            for tif in sorted((tmp / "x").rglob("*.tif")):
                if "__MACOSX" not in tif.parts:
                    tif.rename(out / tif.name)
            if not any(out.iterdir()):
                raise ArchiveError(f"{archive}: no TIFF inside")
            publish_dir(out, dest)
            shutil.rmtree(tmp, ignore_errors=True)
            f.done_with(archive)


FETCHERS: dict[str, Callable[[Fetch], None]] = {
    "bbbc021": fetch_bbbc021, "bbbc048": fetch_bbbc048, "bloodmnist": fetch_bloodmnist,
    "cyclops": fetch_cyclops, "nfkb": fetch_nfkb, "bray": fetch_bray,
}


def fetch(name: str, root: str | Path, base_url: str | None = None, subset: Sequence[str] | None = None,
          policy: RetryPolicy | None = None, say: Callable[[str], None] = print, tty: bool | None = None,
          keep_archives: bool = False, source: str = "cil", wells: Sequence[str] | None = None,
          idr_url: str | None = None) -> Path:
    """Fetch ``name`` into ``root/<name>`` (what the paper suite reads as ``${data_root}/<name>``); ``source``,
    ``wells`` and ``idr_url`` choose where Bray's images come from."""
    C.get(name)
    f = Fetch(name, Path(root) / name, base_url, subset, policy, say, tty, keep_archives, source, wells, idr_url)
    f.target.mkdir(parents=True, exist_ok=True)
    FETCHERS[name](f)
    if f.downloads.is_dir() and not any(f.downloads.iterdir()):
        f.downloads.rmdir()
    _write_bytes(f.target / ".chadavit-fetch.json", json.dumps(
        {"dataset": name, "base_url": base_url, "subset": list(subset or [])}, indent=1).encode())
    return f.target
