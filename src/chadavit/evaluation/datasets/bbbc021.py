"""BBBC021 v1 (MCF-7, Caie et al. 2010): the published image and MoA CSVs and the per-plate zips unpacked
side by side (``Week1_22123/<file>.tif``); single-cell crops around DAPI nuclei."""

from __future__ import annotations

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
from chadavit.evaluation.datasets.extract import (
    ArchiveError,
    find_dir,
    plain_name,
    publish_dir,
    safe_extract,
    scratch_dir,
)
from chadavit.evaluation.datasets.fetching import Fetch, SubsetError
from chadavit.evaluation.datasets.registry import DatasetInfo, PaperDataset, register

CHANNELS = ("DAPI", "Tubulin", "Actin")  # the CSV's column order (file tags w1, w2, w4)
CONTROL = "DMSO"
LAYOUT = """\
BBBC021 v1 (https://bbbc.broadinstitute.org/BBBC021; `chadavit datasets fetch bbbc021 [--subset Week1_22123,...]`):
  PATH/BBBC021_v1_image.csv   the published field table (Image_FileName_{DAPI,Tubulin,Actin}, Image_PathName_*,
                              Image_Metadata_Plate_DAPI, Image_Metadata_Compound, Image_Metadata_Concentration)
  PATH/BBBC021_v1_moa.csv     compound,concentration,moa
  PATH/<plate>/<Image_FileName_*>   each BBBC021_v1_images_<plate>.zip unpacked in PATH, e.g.
                              Week1_22123/G10_s1_w1BEDC2073-A983-4B98-95E9-84466707A25D.tif
                              (the CSV's Week1/Week1_22123/ is also read)"""

BBBC021_ZIP_BYTES = 750e6  # per plate zip, a third-party figure (the BBBC does not publish sizes)
BBBC021_BASE = "https://data.broadinstitute.org/bbbc/BBBC021/"
INFO = DatasetInfo("bbbc021", "BBBC021 v1, MCF-7 compound profiling (MoA, Actin reconstruction)",
                   BBBC021_BASE + " (BBBC021_v1_image.csv, BBBC021_v1_moa.csv, 55 per-plate zips)",
                   "55 zips of about 750 MB each (third-party figure); 39,600 TIFFs",
                   "not verified (BBBC page: images copyright AstraZeneca per a third-party quote)",
                   "Caie et al., Mol Cancer Ther 2010, doi:10.1158/1535-7163.MCT-09-1148; Ljosa et al., Nat Methods "
                   "2012, doi:10.1038/nmeth.2083", "automatic")


def read_metadata(root: Path) -> pd.DataFrame:
    """One row per field with ``moa`` joined on (compound, concentration); DMSO fields get moa ``DMSO``."""
    img_csv, moa_csv = root / "BBBC021_v1_image.csv", root / "BBBC021_v1_moa.csv"
    for f in (img_csv, moa_csv):
        if not f.is_file():
            raise layout_error("bbbc021", LAYOUT, root, f"{f.name} absent")
    table = pd.read_csv(img_csv)
    need = {f"Image_{k}_{c}" for k in ("FileName", "PathName") for c in CHANNELS} | {
        "Image_Metadata_Plate_DAPI", "Image_Metadata_Compound", "Image_Metadata_Concentration"}
    if not need <= set(table.columns):
        raise layout_error("bbbc021", LAYOUT, img_csv, f"columns {sorted(need - set(table.columns))} absent")
    moa = pd.read_csv(moa_csv)
    if not {"compound", "concentration", "moa"} <= set(moa.columns):
        raise layout_error("bbbc021", LAYOUT, moa_csv, f"columns {list(moa.columns)} lack compound,concentration,moa")
    table = table.merge(moa.rename(columns={"compound": "Image_Metadata_Compound",
                                            "concentration": "Image_Metadata_Concentration"}),
                        on=["Image_Metadata_Compound", "Image_Metadata_Concentration"], how="left")
    out = pd.DataFrame({"compound": table["Image_Metadata_Compound"],
                        "concentration": table["Image_Metadata_Concentration"], "moa": table["moa"],
                        "plate": table["Image_Metadata_Plate_DAPI"].astype(str)})
    out["batch"] = out["plate"].str.split("_").str[0]  # the week: BBBC021's batch for NSCB
    for c in CHANNELS:
        out[c] = [(str(p), str(f)) for p, f in zip(table[f"Image_PathName_{c}"], table[f"Image_FileName_{c}"])]
    return out


def resolve(root: Path, path_name: str, file_name: str) -> Path:
    """``PATH/<plate>/<file>`` (a plain unzip), else ``PATH/<WeekN>/<plate>/<file>`` (the CSV's own path)."""
    flat = root / Path(path_name).name / file_name
    return flat if flat.is_file() or not (root / path_name / file_name).is_file() else root / path_name / file_name


def plate_present(root: Path, path_name: str) -> bool:
    return (root / Path(path_name).name).is_dir() or (root / path_name).is_dir()


def index_bbbc021(path: str | Path, include_unlabelled: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fields of the plates present (annotated treatments and DMSO controls unless ``include_unlabelled``) with one
    resolved file per channel; plates not downloaded are skipped and counted, a missing file in a plate is an error."""
    root = Path(path)
    table = read_metadata(root)
    if not include_unlabelled:
        table = table[table["moa"].notna()]
    present = {p for p in table["DAPI"].map(lambda t: t[0]).unique() if plate_present(root, p)}
    if not present:
        raise layout_error("bbbc021", LAYOUT, root, "no plate folder (e.g. Week1_22123/) from the image CSV is here")
    counts = {"plates_present": len(present), "plates_listed": int(table["plate"].nunique())}
    table = table[table["DAPI"].map(lambda t: t[0] in present)].reset_index(drop=True)
    for c in CHANNELS:
        table[c] = [resolve(root, p, f) for p, f in table[c]]
    for c in CHANNELS:
        for f in table[c]:
            if not f.is_file():
                raise layout_error("bbbc021", LAYOUT, f, "image listed in BBBC021_v1_image.csv is absent")
    return table, counts


def load_bbbc021(path: str | Path, crop: int = 96, cells_per_field: int = 8, size: int | None = 64,
                 max_fields: int | None = None, max_images: int | None = None, include_unlabelled: bool = False,
                 split: str = "grouped") -> EvalData:
    """DAPI/Tubulin/Actin single-cell crops with compound, concentration, MoA, plate and batch (week).

    No split was published: ``split="grouped"`` (default) is a fixed split by plate (no plate on both sides);
    ``"random"`` draws one per seed. The MoA protocol uses no split (leave-one-compound-out 1-NN).
    ``max_fields`` keeps at most that many fields per (treatment, plate), for quick runs.
    """
    check_split_mode("bbbc021", split, ("grouped", "random"))
    table, counts = index_bbbc021(path, include_unlabelled)
    if max_fields is not None:
        table = table.groupby(["compound", "concentration", "plate"], sort=True, group_keys=False).head(
            max(1, int(max_fields))).reset_index(drop=True)
    images, rows = [], []
    keep = ["compound", "concentration", "moa", "plate", "batch"]
    for _, r in table.iterrows():
        field = np.stack([read_image_file(r[c])[0] for c in CHANNELS])
        for cell in crop_cells(field, crop, cells_per_field):
            images.append(cell)
            rows.append({k: r[k] for k in keep} | {"field": str(r["DAPI"].name)})
    if not images:
        raise layout_error("bbbc021", LAYOUT, Path(path), "no cells found in the listed fields")
    labels = pd.DataFrame(rows)
    how = "random per seed"
    if split == "grouped":
        labels["split"] = grouped_split(labels["plate"])
        how = "fixed split by plate (no plate on both sides; none published)"
    info = {"source": str(path), "split": split_note(labels, how), **counts}
    return finish(EvalData("bbbc021", images, [CHANNELS] * len(images), labels, info), size, max_images)


# ------------------------------------------------------------------------------------- fetch and check
def fetch_bbbc021(f: Fetch) -> None:
    for name in ("BBBC021_v1_image.csv", "BBBC021_v1_moa.csv"):
        f.get(BBBC021_BASE + name, name, f.target / name)
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
    todo = [p for p in plates if not (f.target / p).is_dir()]
    f.confirm(f"{len(todo)} plate zip(s) of ~750 MB", len(todo) * BBBC021_ZIP_BYTES)
    for i, plate in enumerate(plates, 1):
        if (f.target / plate).is_dir():
            f.say(f"[{i}/{len(plates)}] {plate}: present, skipped")
            continue
        zname = f"BBBC021_v1_images_{plate}.zip"
        f.say(f"[{i}/{len(plates)}] {plate}")
        archive = f.get(BBBC021_BASE + zname, zname, f.downloads / zname)
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


def check_bbbc021(root: Path) -> str:
    t, counts = index_bbbc021(root)
    first_readable("bbbc021", LAYOUT, [t["DAPI"].iloc[0]])
    return (f"{counts['plates_present']} of {counts['plates_listed']} plates present; {len(t):,} annotated or DMSO "
            f"fields with all three channels")


DATASET = register(PaperDataset(INFO, LAYOUT, load_bbbc021, fetch_bbbc021, check_bbbc021))
