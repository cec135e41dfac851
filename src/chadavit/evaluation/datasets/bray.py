"""Bray et al. 2017 Cell Painting (CDRP; cpg0012 / idr0016 / Cell Image Library): plates, wells, sites and five
per-channel TIFFs, compounds from the plate maps and MoA from the DeepProfiler MoA matches file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.data.readers import read_image_file
from chadavit.evaluation.data import EvalData
from chadavit.evaluation.datasets.checking import first_readable
from chadavit.evaluation.datasets.common import (
    check_split_mode,
    crop_cells,
    finish,
    grouped_split,
    layout_error,
    split_note,
)
from chadavit.evaluation.datasets.extract import ArchiveError, plain_name, publish_dir, safe_extract, scratch_dir
from chadavit.evaluation.datasets.fetching import Fetch, SubsetError, manual_steps
from chadavit.evaluation.datasets.registry import DatasetInfo, PaperDataset, register

# acquisition order; the file's w<N> tag is the 1-based position here
CHANNELS = ("Hoechst", "ERSyto", "ERSytoBleed", "Ph_golgi", "Mito")
CONTROL = "DMSO"
MOA_FILE = "CDRP_MOA_MATCHES_official.csv"
LAYOUT = """\
Bray et al. 2017 Cell Painting (CC0; `chadavit datasets fetch bray --subset PLATE[,PLATE]` or its manual steps):
  PATH/images/<plate>-<Channel>/cdp2bioactives_<well>_s<site>_w<N><UUID>.tif   (one folder per plate and channel,
        as the Cell Image Library zips <plate>-<Channel>.zip unpack; Channel: Hoechst ERSyto ERSytoBleed Ph_golgi Mito,
        N = 1..5 in that order; PATH/images/<plate>/<plate>-<Channel>/ also read)
  PATH/metadata/barcode_platemap.csv            Plate_Map_Name,Assay_Plate_Barcode
  PATH/metadata/platemap/<Plate_Map_Name>.txt   TAB: well_position,broad_sample,mmoles_per_liter,solvent
  PATH/metadata/CDRP_MOA_MATCHES_official.csv   Var1 (BRD id),Metadata_moa.x"""

BRAY_METADATA = ("https://raw.githubusercontent.com/broadinstitute/2015_Bray_GigaScience-data/"
                 "ad555944caed7cd9108748d16d33c386d5b5c406/metadata/platemaps/CDRP/")
BRAY_MOA = ("https://raw.githubusercontent.com/broadinstitute/DeepProfilerExperiments/"
            "bf5eaa05f9e772ca4abc7b4629b10c5bedc5dba1/cdrp/data/CDRP_MOA_MATCHES_official.csv")
BRAY_PLATE_BYTES = 3.1e12 / 406  # 5 channel zips of one plate: the Cell Painting Gallery total over its plates
BRAY_CIL = "https://cildata.crbs.ucsd.edu/broad_data/plate_{plate}/{plate}-{channel}.zip"
INFO = DatasetInfo("bray", "Bray et al. 2017 Cell Painting, 30,616 compounds in U2OS (5 channels)",
                   "Cell Image Library zips per plate and channel; Cell Painting Gallery cpg0012; IDR idr0016",
                   "406 plates, 4.5 M TIFFs (3.1 TB in the Cell Painting Gallery)", "CC0 1.0",
                   "Bray et al., GigaScience 6:giw014 (2017), doi:10.1093/gigascience/giw014; Wawer et al., PNAS 2014",
                   "partly automatic (--subset PLATES)")
MANUAL = f"""\
Bray et al. images: give plates to fetch from the Cell Image Library, e.g.
  chadavit datasets fetch bray --subset 24277,24278
(5 zips per plate, {BRAY_CIL}), or get them by hand from another mirror:
  * Cell Painting Gallery (CC0):  aws s3 cp --no-sign-request --recursive \\
      s3://cellpainting-gallery/cpg0012-wawer-bioactivecompoundprofiling/broad/images/CDRP/images/<plate>/ <dir>
  * IDR idr0016 (screenA, 413 plates, CC0), automatically through the project's IDR client:
      chadavit datasets fetch bray --source idr --subset 24277 [--wells A01,B02]
then place each site's five TIFFs as
  {{target}}/images/<plate>-<Channel>/cdp2bioactives_<well>_s<site>_w<N><UUID>.tif
  (Channel: Hoechst=w1 ERSyto=w2 ERSytoBleed=w3 Ph_golgi=w4 Mito=w5)
and check with: chadavit datasets check bray {{target}}
The plate maps and MoA matches are already in {{target}}/metadata/."""

_DIR_RX = re.compile(rf"^(?P<plate>\d+)-(?P<channel>{'|'.join(CHANNELS)})$")
_FILE_RX = re.compile(r"^cdp2bioactives_(?P<well>[a-pA-P]\d{2})_s(?P<site>\d+)_w(?P<w>\d)[^/]*\.tiff?$")


def read_plate_metadata(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``plate barcode -> plate map name`` and ``BRD id -> MoA``."""
    meta = root / "metadata"
    bmap, moa_f = meta / "barcode_platemap.csv", meta / MOA_FILE
    for f in (bmap, moa_f):
        if not f.is_file():
            raise layout_error("bray", LAYOUT, root, f"metadata/{f.name} absent")
    b = pd.read_csv(bmap, dtype=str)
    plate_to_map = dict(zip(b["Assay_Plate_Barcode"].str.strip(), b["Plate_Map_Name"].str.strip()))
    m = pd.read_csv(moa_f, dtype=str)
    if not {"Var1", "Metadata_moa.x"} <= set(m.columns):
        raise layout_error("bray", LAYOUT, moa_f, f"columns {list(m.columns)} lack Var1,Metadata_moa.x")
    moa = dict(zip(m["Var1"].str[:13], m["Metadata_moa.x"]))
    return plate_to_map, moa


def platemap(root: Path, name: str) -> pd.DataFrame:
    f = root / "metadata" / "platemap" / f"{name}.txt"
    if not f.is_file():
        raise layout_error("bray", LAYOUT, f, "plate map named by barcode_platemap.csv is absent")
    t = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False)
    t["compound"] = [s[:13] if s.strip() else CONTROL for s in t["broad_sample"]]
    t["concentration"] = pd.to_numeric(t["mmoles_per_liter"], errors="coerce").fillna(0.0).round(6)
    return t.set_index(t["well_position"].str.upper())


def index_bray(path: str | Path) -> pd.DataFrame:
    """One row per site with all five channel files: plate, well, site, plate_map and one file column per channel."""
    root = Path(path)
    img_root = root / "images"
    if not img_root.is_dir():
        raise layout_error("bray", LAYOUT, root, "images/ absent")
    dirs = [d for d in list(img_root.iterdir()) + [e for d in img_root.iterdir() if d.is_dir() for e in d.iterdir()]
            if d.is_dir() and _DIR_RX.match(d.name)]
    sites: dict[tuple[str, str, int], dict[str, Path]] = {}
    for d in sorted(dirs):
        m = _DIR_RX.match(d.name)
        assert m is not None
        want = str(CHANNELS.index(m["channel"]) + 1)
        for f in sorted(d.iterdir()):
            fm = _FILE_RX.match(f.name)
            if fm and fm["w"] == want:
                sites.setdefault((m["plate"], fm["well"].upper(), int(fm["site"])), {})[m["channel"]] = f
    rows = [{"plate": p, "well": w, "site": s} | files for (p, w, s), files in sorted(sites.items())
            if set(files) == set(CHANNELS)]
    if not rows:
        raise layout_error("bray", LAYOUT, img_root, "no site has all five channel files "
                           "(<plate>-<Channel>/cdp2bioactives_<well>_s<site>_w<N>....tif)")
    return pd.DataFrame(rows)


def annotate(root: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Add plate_map, compound (13-char BRD id or DMSO), concentration and moa (NaN where none is published)."""
    plate_to_map, moa = read_plate_metadata(root)
    maps: dict[str, pd.DataFrame] = {}
    out = []
    for _, r in table.iterrows():
        name = plate_to_map.get(r["plate"])
        if name is None:
            raise layout_error("bray", LAYOUT, root / "metadata" / "barcode_platemap.csv",
                               f"plate {r['plate']} is not listed")
        pm = maps.setdefault(name, platemap(root, name))
        if r["well"] not in pm.index:
            raise layout_error("bray", LAYOUT, root / "metadata" / "platemap" / f"{name}.txt",
                               f"well {r['well']} of plate {r['plate']} is not listed")
        w = pm.loc[r["well"]]
        cpd = str(w["compound"])
        out.append({"plate_map": name, "compound": cpd, "concentration": 0.0 if cpd == CONTROL else
                    float(w["concentration"]), "moa": CONTROL if cpd == CONTROL else moa.get(cpd, np.nan)})
    return pd.concat([table.reset_index(drop=True), pd.DataFrame(out)], axis=1)


def load_bray(path: str | Path, channels: tuple[str, ...] = CHANNELS, crop: int = 96, cells_per_field: int = 8,
              size: int | None = 64, max_images: int | None = None, include_unannotated: bool = False,
              split: str = "grouped") -> EvalData:
    """Single-cell crops of the sites present. Compounds without a published MoA are left out (and counted in
    ``info``) unless ``include_unannotated``; batch = plate map (the replicate plates of one map were run
    together), plate = barcode (per-plate DMSO normalisation). ``split``: ``grouped`` (by plate) or ``random``."""
    check_split_mode("bray", split, ("grouped", "random"))
    root = Path(path)
    table = annotate(root, index_bray(root))
    no_moa = table["moa"].isna()
    counts = {"sites": len(table), "compounds_without_moa": int(table.loc[no_moa, "compound"].nunique()),
              "sites_without_moa": int(no_moa.sum())}
    if not include_unannotated:
        table = table[~no_moa].reset_index(drop=True)
    nuc = channels.index("Hoechst") if "Hoechst" in channels else 0
    images, rows = [], []
    for _, r in table.iterrows():
        field = np.stack([read_image_file(r[c])[0] for c in channels])
        for cell in crop_cells(field, crop, cells_per_field, nucleus_channel=nuc):
            images.append(cell)
            rows.append({"compound": r["compound"], "concentration": r["concentration"], "moa": r["moa"],
                         "plate": r["plate"], "batch": r["plate_map"], "well": f"{r['plate']}_{r['well']}"})
    if not images:
        raise layout_error("bray", LAYOUT, root, "no cells found in the annotated sites")
    labels = pd.DataFrame(rows)
    how = "random per seed"
    if split == "grouped":
        labels["split"] = grouped_split(labels["plate"])
        how = "fixed split by plate (none published)"
    info = {"source": str(root), "split": split_note(labels, how), **counts,
            "note": f"{counts['compounds_without_moa']} compound(s) without a published MoA "
                    f"({counts['sites_without_moa']} sites) " + ("kept" if include_unannotated else "left out")}
    return finish(EvalData("bray", images, [tuple(channels)] * len(images), labels, info), size, max_images)


# ------------------------------------------------------------------------------------- fetch and check
def fetch_bray(f: Fetch) -> None:
    meta = f.target / "metadata"
    f.get(BRAY_METADATA + "barcode_platemap.csv", "metadata/barcode_platemap.csv", meta / "barcode_platemap.csv")
    f.get(BRAY_MOA, f"metadata/{MOA_FILE}", meta / MOA_FILE)
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
        f.get(BRAY_METADATA + f"platemap/{name}.txt", f"metadata/platemap/{name}.txt",
              meta / "platemap" / f"{name}.txt")
    if not plates:
        f.say(manual_steps("bray", str(f.target)))
        return
    if not f.wells:  # some wells of a plate: a small part, not worth a question
        f.confirm(f"{len(plates)} plate(s) x {len(CHANNELS)} channels, ~{BRAY_PLATE_BYTES / 1e9:.1f} GB a plate",
                  len(plates) * BRAY_PLATE_BYTES)
    if f.source == "idr":
        from chadavit.data.idr_client import DEFAULT_SERVER, IDRClient
        from chadavit.evaluation.datasets.bray_idr import fetch_plates_from_idr

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
            archive = f.get(BRAY_CIL.format(plate=plate, channel=channel), f"images/{zname}", f.downloads / zname)
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


def check_bray(root: Path) -> str:
    t = annotate(root, index_bray(root))
    first_readable("bray", LAYOUT, [t["Hoechst"].iloc[0]])
    no_moa = t["moa"].isna()
    return (f"{len(t):,} sites with five channels on {t['plate'].nunique()} plate(s); {int((~no_moa).sum()):,} sites "
            f"of DMSO or compounds with an MoA, {int(t.loc[no_moa, 'compound'].nunique())} compound(s) without one")


DATASET = register(PaperDataset(INFO, LAYOUT, load_bray, fetch_bray, check_bray, MANUAL))
