"""Stand-in trees of the six paper datasets: the real names, folders and metadata (from ../shared), small
generated pixels. Used by the adapter, `datasets check/fetch` and end-to-end suite tests."""

from __future__ import annotations

import ast
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image

META = ("data", "eval_metadata")
BBBC021_MOAS = ("Actin disruptors", "Aurora kinase inhibitors", "Microtubule destabilizers")


def meta_dir(shared: Path, name: str) -> Path:
    return shared.joinpath(*META, name)


def cell_field(rng: np.random.Generator, n_channels: int, size: int = 96, n_nuclei: int = 2,
               level: int = 3000) -> np.ndarray:
    """uint16 field with bright round nuclei in every channel (for the nucleus-centred crops)."""
    f = rng.integers(100, 200, size=(n_channels, size, size)).astype(np.uint16)
    yy, xx = np.mgrid[:size, :size]
    for k in range(n_nuclei):
        cy, cx = 24 + 40 * k, 26 + 38 * k
        f[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 8**2] += np.uint16(level)
    return f


def write_bloodmnist(root: Path, counts: tuple[int, int, int] = (16, 4, 8), size: int = 28, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in zip(("train", "val", "test"), counts):
        labels = np.arange(n) % 8
        imgs = rng.integers(0, 60, size=(n, size, size, 3), dtype=np.uint8)
        imgs += (labels * 24).astype(np.uint8)[:, None, None, None]
        arrays[f"{part}_images"], arrays[f"{part}_labels"] = imgs, labels[:, None]
    root.mkdir(parents=True, exist_ok=True)
    name = "bloodmnist.npz" if size == 28 else f"bloodmnist_{size}.npz"
    np.savez(root / name, **arrays)
    return root / name


def bbbc048_rows(shared: Path, classes: tuple[str, ...] = ("G1", "G2", "S"), n_train: int = 4,
                 n_val: int = 2) -> pd.DataFrame:
    """Real (stage, id, part) rows of the official ChAda-ViT split files."""
    rows = []
    for part, n in (("train", n_train), ("val", n_val)):
        t = pd.read_csv(meta_dir(shared, "bbbc048") / f"chadavit_{part}.csv", header=None, names=["id", "y", "paths"])
        t["stage"] = [ast.literal_eval(p)[0].split("/")[0] for p in t["paths"]]
        for c in classes:
            sub = t[t["stage"] == c].head(n)
            rows += [{"stage": c, "id": str(i), "part": part} for i in sub["id"]]
    return pd.DataFrame(rows)


def write_bbbc048(root: Path, shared: Path, seed: int = 1, extra_id: str | None = "49999") -> pd.DataFrame:
    """``CellCycle/<class>/<id>_Ch3/4/6.ome.jpg`` plus a merged JPEG (ignored) and one cell in no split file."""
    rng = np.random.default_rng(seed)
    rows = bbbc048_rows(shared)
    if extra_id:
        rows = pd.concat([rows, pd.DataFrame([{"stage": "G1", "id": extra_id, "part": "none"}])], ignore_index=True)
    for k, r in rows.iterrows():
        d = root / "CellCycle" / r["stage"]
        d.mkdir(parents=True, exist_ok=True)
        for ch in ("Ch3", "Ch4", "Ch6"):
            Image.fromarray(rng.integers(0, 255, (66, 66), dtype=np.uint8)).save(d / f"{r['id']}_{ch}.ome.jpg")
        if k == 0:
            Image.fromarray(rng.integers(0, 255, (66, 66, 3), dtype=np.uint8)).save(d / f"{r['id']}_merged.jpg")
    return rows


def write_cyclops(root: Path, shared: Path, classes: tuple[str, ...] = ("ER", "NUCLEI", "VACUOLE"), n_train: int = 4,
                  n_val: int = 2, seed: int = 2) -> pd.DataFrame:
    """``<CLASS>/<CLASS>_<id>_{gfp,rfp}.tif`` for real (class, id) rows of the official split."""
    rng = np.random.default_rng(seed)
    rows = []
    for part, n in (("train", n_train), ("val", n_val)):
        t = pd.read_csv(meta_dir(shared, "cyclops") / f"chadavit_{part}.csv", header=None, names=["cls", "id", "ch"])
        for c in classes:
            rows += [{"localisation": c, "id": str(i), "part": part} for i in t[t["cls"] == c].head(n)["id"]]
    for r in rows:
        d = root / r["localisation"]
        d.mkdir(parents=True, exist_ok=True)
        for ch, scale in (("gfp", 4000), ("rfp", 1000)):
            tifffile.imwrite(d / f"{r['localisation']}_{r['id']}_{ch}.tif",
                             rng.integers(0, scale, (64, 64), dtype=np.uint16))
    return pd.DataFrame(rows)


def write_nfkb(root: Path, shared: Path, n_train: int = 8, n_val: int = 4, size: int = 64,
               seed: int = 3) -> pd.DataFrame:
    """The real target rows (a subset, as CSVs in ``analyse_256x256/``) and RGB PNGs in ``256x256/<cat>/``;
    red is left empty (so the adapter must drop it), green carries NF-kB, blue the nuclei."""
    rng = np.random.default_rng(seed)
    out = []
    (root / "analyse_256x256").mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("val", n_val)):
        t = pd.read_csv(meta_dir(shared, "nfkb_transloc") / f"single_ratio_images_{part}.csv")
        sub = t.groupby("cat", group_keys=False).head(max(1, n // 4)).head(n)
        sub.to_csv(root / "analyse_256x256" / f"single_ratio_images_{part}.csv", index=False)
        for _, r in sub.iterrows():
            d = root / "256x256" / str(r["cat"])
            d.mkdir(parents=True, exist_ok=True)
            img = np.zeros((size, size, 3), np.uint8)
            img[..., 1] = rng.integers(0, 200, (size, size))
            img[..., 2] = rng.integers(0, 100, (size, size))
            Image.fromarray(img).save(d / r["image_name"])
        out.append(sub.assign(part=part))
    return pd.concat(out, ignore_index=True)


def write_bbbc021(root: Path, shared: Path, moas: tuple[str, ...] = BBBC021_MOAS, dmso_fields: int = 2,
                  seed: int = 4) -> pd.DataFrame:
    """Real rows of BBBC021_v1_image.csv (one field per compound of ``moas`` at its top dose, DMSO fields on the
    same plates), the real MoA CSV, and TIFFs in plain-unzip plate folders (``Week1_22123/<file>``)."""
    rng = np.random.default_rng(seed)
    src = meta_dir(shared, "bbbc021")
    table = pd.read_csv(src / "BBBC021_v1_image.csv")
    moa = pd.read_csv(src / "BBBC021_v1_moa.csv")
    treat = moa[moa["moa"].isin(moas)].sort_values("concentration").groupby("compound").tail(1)
    picked = []
    for _, t in treat.iterrows():
        rows = table[(table["Image_Metadata_Compound"] == t["compound"])
                     & (table["Image_Metadata_Concentration"] == t["concentration"])]
        picked.append(rows.head(1))
    picked_df = pd.concat(picked)
    for plate in picked_df["Image_Metadata_Plate_DAPI"].unique():
        dmso = table[(table["Image_Metadata_Plate_DAPI"] == plate) & (table["Image_Metadata_Compound"] == "DMSO")]
        picked.append(dmso.head(dmso_fields))
    out = pd.concat(picked, ignore_index=True)
    root.mkdir(parents=True, exist_ok=True)
    out.to_csv(root / "BBBC021_v1_image.csv", index=False)
    shutil.copy(src / "BBBC021_v1_moa.csv", root / "BBBC021_v1_moa.csv")
    for _, r in out.iterrows():
        field = cell_field(rng, 3)
        for k, c in enumerate(("DAPI", "Tubulin", "Actin")):
            d = root / Path(r[f"Image_PathName_{c}"]).name
            d.mkdir(exist_ok=True)
            tifffile.imwrite(d / r[f"Image_FileName_{c}"], field[k])
    return out


BRAY_CHANNELS = ("Hoechst", "ERSyto", "ERSytoBleed", "Ph_golgi", "Mito")


def bray_wells(shared: Path, plates: tuple[str, ...] = ("24277", "24278"), n_moa: int = 3) -> pd.DataFrame:
    """Real wells of two plates' maps: DMSO, compounds with an MoA (MoAs shared by both maps when possible) and one
    compound without an MoA per plate."""
    src = meta_dir(shared, "bray")
    bmap = pd.read_csv(src / "barcode_platemap.csv", dtype=str)
    moa = pd.read_csv(src / "CDRP_MOA_MATCHES_official.csv", dtype=str)
    moa_of = dict(zip(moa["Var1"], moa["Metadata_moa.x"]))
    maps = {}
    for p in plates:
        name = bmap.loc[bmap["Assay_Plate_Barcode"] == p, "Plate_Map_Name"].iloc[0]
        t = pd.read_csv(src / "platemaps_CDRP" / f"{name}.txt", sep="\t", dtype=str, keep_default_na=False)
        t["brd"] = t["broad_sample"].str[:13]
        t["moa"] = t["brd"].map(moa_of)
        maps[p] = (name, t)
    common = set.intersection(*[set(t["moa"].dropna()) for _, t in maps.values()])
    rows = []
    for p, (name, t) in maps.items():
        ann = t[t["moa"].notna()]
        chosen = sorted(common)[:n_moa] if len(common) >= n_moa else sorted(set(ann["moa"]))[:n_moa]
        for m in chosen:
            w = ann[ann["moa"] == m].head(1)
            rows += [{"plate": p, "map": name, "well": x} for x in w["well_position"]]
        rows += [{"plate": p, "map": name, "well": x} for x in t[t["broad_sample"] == ""]["well_position"].head(2)]
        rows += [{"plate": p, "map": name, "well": x} for x in t[(t["broad_sample"] != "") & t["moa"].isna()]
                 ["well_position"].head(1)]
    return pd.DataFrame(rows)


def write_bray(root: Path, shared: Path, seed: int = 5, plates: tuple[str, ...] = ("24277", "24278")) -> pd.DataFrame:
    """``images/<plate>-<Channel>/cdp2bioactives_<well>_s1_w<N><UUID>.tif`` and ``metadata/`` with the real plate
    maps and MoA matches."""
    rng = np.random.default_rng(seed)
    src = meta_dir(shared, "bray")
    wells = bray_wells(shared, plates)
    (root / "metadata" / "platemap").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "barcode_platemap.csv", root / "metadata" / "barcode_platemap.csv")
    shutil.copy(src / "CDRP_MOA_MATCHES_official.csv", root / "metadata" / "CDRP_MOA_MATCHES_official.csv")
    for name in wells["map"].unique():
        shutil.copy(src / "platemaps_CDRP" / f"{name}.txt", root / "metadata" / "platemap" / f"{name}.txt")
    for _, r in wells.iterrows():
        field = cell_field(rng, 5)
        for k, c in enumerate(BRAY_CHANNELS):
            d = root / "images" / f"{r['plate']}-{c}"
            d.mkdir(parents=True, exist_ok=True)
            uid = uuid.UUID(int=int(rng.integers(1 << 62)))
            tifffile.imwrite(d / f"cdp2bioactives_{r['well'].lower()}_s1_w{k + 1}{uid}.tif", field[k])
    return wells


def write_all(root: Path, shared: Path) -> None:
    """All six under ``root/<name>``, as `chadavit eval --suite paper --set data_root=root` reads them."""
    write_bloodmnist(root / "bloodmnist")
    write_bbbc048(root / "bbbc048", shared)
    write_cyclops(root / "cyclops", shared)
    write_nfkb(root / "nfkb", shared)
    write_bbbc021(root / "bbbc021", shared)
    write_bray(root / "bray", shared)
