"""Dataset adapters: each reads one benchmark as its download lays it out and returns an `EvalData`.

The expected layouts and download sources are written in each adapter's ``LAYOUT`` string (shown in the
error when a dataset is missing) and in ``docs/evaluation.md``. Adapters take ``size`` (resize every
image to ``size x size``) and ``max_images`` (a fixed, seeded subsample for quick runs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chadavit.data.readers import read_image_file
from chadavit.evaluation.data import DatasetLayoutError, EvalData, resize_images

PACKAGED_DIR = Path(__file__).resolve().parent / "data"

BLOODMNIST_CLASSES = ("basophil", "eosinophil", "erythroblast", "immature granulocyte", "lymphocyte", "monocyte",
                      "neutrophil", "platelet")
BBBC048_CLASSES = ("Anaphase", "G1", "G2", "Metaphase", "Prophase", "S", "Telophase")

LAYOUTS: dict[str, str] = {
    "bloodmnist": """\
BloodMNIST (MedMNIST v2, https://zenodo.org/records/10519652, file bloodmnist.npz or bloodmnist_{64,128,224}.npz):
  PATH/bloodmnist.npz  keys train_images (N,28,28,3) uint8, train_labels (N,1), val_*, test_*  (8 classes)""",
    "bbbc048": """\
BBBC048 Jurkat cell cycle (https://bbbc.broadinstitute.org/BBBC048, CellCycle.zip unpacked):
  PATH/<phase>/<id>_Ch<k>.<ext>   one file per channel (ext jpg/png/tif, '.ome' allowed), phase folders
  Anaphase G1 G2 Metaphase Prophase S Telophase; channels picked by `channels` (default Ch3 Ch4 Ch6)""",
    "cyclops": """\
CYCLoPs yeast localisation (Koh et al. 2015, http://cyclops.ccbr.utoronto.ca, single-cell crops):
  PATH/<class>/<id>_gfp.<ext> and PATH/<class>/<id>_rfp.<ext>   (channel order fixed: GFP, RFP)
  optional PATH/split.csv with columns id,split (train/test)""",
    "nfkb": """\
NF-kB translocation (as used by ChAda-ViT, CSV cat,image_name,ratio):
  PATH/labels.csv  columns image_name, ratio[, cat][, split]
  PATH/images/<image_name>  one multi-channel image (PNG/TIFF); channels taken in order (default NF-kB, DNA)""",
    "bbbc021": """\
BBBC021 v1 (https://bbbc.broadinstitute.org/BBBC021; BBBC021_v1_images_*.zip unpacked + CSVs):
  PATH/BBBC021_v1_image.csv  columns Image_FileName_{DAPI,Tubulin,Actin}, Image_PathName_{DAPI,Tubulin,Actin},
                             Image_Metadata_Plate_DAPI, Image_Metadata_Compound, Image_Metadata_Concentration
  PATH/BBBC021_v1_moa.csv    columns compound, concentration, moa
  PATH/<Image_PathName_*>/<Image_FileName_*>   16-bit TIFFs, e.g. Week1_22123/Week1_150607_B02_s1_w1....tif
  (batch = the 'WeekN' prefix of the path; cells cropped around Otsu-thresholded DAPI nuclei)""",
    "bray": """\
Bray et al. 2017 Cell Painting (cpg0012 / IDR idr0016), per-channel TIFFs plus a metadata table:
  PATH/metadata.csv  columns plate, well, site, compound[, concentration][, moa]
  PATH/images/<plate>/<well>_s<site>_<channel>.tif  channels Hoechst ERSyto ERSytoBleed Ph_golgi Mito""",
    "deeploc_yeast": """\
DeepLoc Schuldiner test set (Kraus et al. 2017, github okraus/DeepLoc, BSD-3):
  PATH/schuldiner_test_64x64_2ch.npz  keys images (N,2,64,64) uint16, labels, class_names, channel_names
  (a copy ships in chadavit/evaluation/data/)""",
    "npz": """\
Generic npz: PATH (file) with images (N,C,H,W), labels (N,) and optional channel_names (C,), class_names, split""",
}


def _missing(name: str, path: Path, detail: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"{name} dataset not found or malformed at {path}: {detail}\nExpected layout:\n"
                              f"{LAYOUTS[name]}")


def _finish(data: EvalData, size: int | None, max_images: int | None, seed: int = 0) -> EvalData:
    if max_images is not None and len(data) > max_images:
        rng = np.random.default_rng(seed)
        data = data.subset(np.sort(rng.choice(len(data), int(max_images), replace=False)))
    if size is not None:
        data.images = resize_images(data.images, int(size))
    return data


# ---------------------------------------------------------------------------------------------- adapters
def load_bloodmnist(path: str | Path, size: int | None = None, max_images: int | None = None,
                    splits: tuple[str, ...] = ("train", "val", "test")) -> EvalData:
    """BloodMNIST: 3-channel (R, G, B) blood-cell images, 8 classes (MedMNIST v2)."""
    p = Path(path)
    f = p if p.is_file() else next(iter(sorted(p.glob("bloodmnist*.npz"))), p / "bloodmnist.npz")
    if not f.is_file():
        raise _missing("bloodmnist", p, "no bloodmnist*.npz")
    with np.load(f) as z:
        images, labels, split = [], [], []
        for s in splits:
            if f"{s}_images" not in z:
                raise _missing("bloodmnist", f, f"key {s}_images absent")
            imgs = z[f"{s}_images"]
            imgs = imgs[..., None] if imgs.ndim == 3 else imgs
            images += list(np.ascontiguousarray(np.moveaxis(imgs, -1, 1)))
            labels += z[f"{s}_labels"].reshape(-1).astype(int).tolist()
            split += ["test" if s == "test" else "train"] * len(imgs)
    df = pd.DataFrame({"label": labels, "split": split})
    df["class_name"] = [BLOODMNIST_CLASSES[i] if i < len(BLOODMNIST_CLASSES) else str(i) for i in labels]
    names = [("R", "G", "B")[: im.shape[0]] for im in images]
    return _finish(EvalData("bloodmnist", images, names, df, {"source": str(f), "classes": BLOODMNIST_CLASSES}),
                   size, max_images)


_BBBC048_RX = re.compile(r"^(?P<id>.+?)_(?P<channel>Ch\d+)(?:\.ome)?\.(?:jpe?g|png|tiff?)$", re.IGNORECASE)


def load_bbbc048(path: str | Path, channels: tuple[str, ...] = ("Ch3", "Ch4", "Ch6"), size: int | None = 64,
                 max_images: int | None = None) -> EvalData:
    """BBBC048 Jurkat ImageStream cell cycle: per-channel files in phase folders, 7 stages."""
    root = Path(path)
    if not root.is_dir():
        raise _missing("bbbc048", root, "folder absent")
    images, names, rows = [], [], []
    for cls_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        groups: dict[str, dict[str, Path]] = {}
        for f in sorted(cls_dir.iterdir()):
            m = _BBBC048_RX.match(f.name)
            if m:
                groups.setdefault(m["id"], {})[m["channel"]] = f
        for cid, files in groups.items():
            if not all(c in files for c in channels):
                continue
            planes = [read_image_file(files[c])[0] for c in channels]
            if len({pl.shape for pl in planes}) > 1:
                planes = resize_images([pl[None] for pl in planes], size or planes[0].shape[0])
                planes = [pl[0] for pl in planes]
            images.append(np.stack(planes))
            names.append(tuple(channels))
            rows.append({"id": cid, "stage": cls_dir.name})
    if not images:
        raise _missing("bbbc048", root, f"no phase folder holds files with channels {list(channels)}")
    if size is None and len({im.shape for im in images}) > 1:
        size = 64
    return _finish(EvalData("bbbc048", images, names, pd.DataFrame(rows), {"source": str(root)}), size, max_images)


def load_cyclops(path: str | Path, size: int | None = 64, max_images: int | None = None) -> EvalData:
    """CYCLoPs: 2-channel (GFP, RFP) yeast crops in localisation-class folders, channel order fixed."""
    root = Path(path)
    if not root.is_dir():
        raise _missing("cyclops", root, "folder absent")
    rx = re.compile(r"^(?P<id>.+)_(?P<channel>gfp|rfp)\.(?:png|tiff?)$", re.IGNORECASE)
    images, names, rows = [], [], []
    for cls_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        groups: dict[str, dict[str, Path]] = {}
        for f in sorted(cls_dir.iterdir()):
            m = rx.match(f.name)
            if m:
                groups.setdefault(m["id"], {})[m["channel"].lower()] = f
        for cid, files in groups.items():
            if set(files) != {"gfp", "rfp"}:
                continue
            images.append(np.stack([read_image_file(files[c])[0] for c in ("gfp", "rfp")]))
            names.append(("GFP", "RFP"))
            rows.append({"id": cid, "localisation": cls_dir.name})
    if not images:
        raise _missing("cyclops", root, "no class folder holds <id>_gfp/<id>_rfp pairs")
    df = pd.DataFrame(rows)
    if (root / "split.csv").is_file():
        sp = pd.read_csv(root / "split.csv", dtype={"id": str})
        df = df.merge(sp[["id", "split"]], on="id", how="left")
    if size is None and len({im.shape for im in images}) > 1:
        size = 64
    return _finish(EvalData("cyclops", images, names, df, {"source": str(root)}), size, max_images)


def load_nfkb(path: str | Path, channels: tuple[str, ...] = ("NF-kB", "DNA"), size: int | None = 64,
              max_images: int | None = None) -> EvalData:
    """NF-kB translocation: multi-channel images and a continuous nuclear/cytoplasmic ratio."""
    root = Path(path)
    csv = root / "labels.csv"
    if not csv.is_file():
        raise _missing("nfkb", root, "labels.csv absent")
    table = pd.read_csv(csv)
    if not {"image_name", "ratio"} <= set(table.columns):
        raise _missing("nfkb", csv, f"columns {list(table.columns)} lack image_name/ratio")
    images = []
    for name in table["image_name"]:
        img = read_image_file(root / "images" / str(name))
        if img.shape[0] < len(channels):
            raise _missing("nfkb", root / "images" / str(name), f"{img.shape[0]} channels, need {len(channels)}")
        images.append(np.ascontiguousarray(img[: len(channels)]))
    df = table.rename(columns={"ratio": "translocation"}).reset_index(drop=True)
    return _finish(EvalData("nfkb", images, [tuple(channels)] * len(images), df, {"source": str(root)}),
                   size, max_images)


def crop_cells(field: np.ndarray, crop: int, max_cells: int, nucleus_channel: int = 0,
               min_area: int = 30) -> list[np.ndarray]:
    """Single-cell crops ``(C, crop, crop)`` centred on Otsu-thresholded nuclei (largest first)."""
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label, regionprops

    dna = gaussian(field[nucleus_channel].astype(np.float32), sigma=2)
    if float(dna.max()) <= float(dna.min()):
        return []
    mask = dna > threshold_otsu(dna)
    props = sorted((r for r in regionprops(label(mask)) if r.area >= min_area), key=lambda r: -r.area)
    h, w = field.shape[1:]
    half = crop // 2
    out = []
    for r in props:
        cy, cx = (int(round(v)) for v in r.centroid)
        y0, x0 = min(max(cy - half, 0), max(h - crop, 0)), min(max(cx - half, 0), max(w - crop, 0))
        c = field[:, y0 : y0 + crop, x0 : x0 + crop]
        if c.shape[1:] == (crop, crop):
            out.append(np.ascontiguousarray(c))
        if len(out) >= max_cells:
            break
    return out


def load_bbbc021(path: str | Path, crop: int = 96, cells_per_field: int = 8, size: int | None = 64,
                 max_fields: int | None = None, max_images: int | None = None,
                 include_unlabelled: bool = False) -> EvalData:
    """BBBC021: DAPI/Tubulin/Actin fields with compound, concentration, MoA and batch (week); single-cell crops."""
    root = Path(path)
    img_csv, moa_csv = root / "BBBC021_v1_image.csv", root / "BBBC021_v1_moa.csv"
    for f in (img_csv, moa_csv):
        if not f.is_file():
            raise _missing("bbbc021", root, f"{f.name} absent")
    table = pd.read_csv(img_csv)
    moa = pd.read_csv(moa_csv)
    table = table.merge(moa.rename(columns={"compound": "Image_Metadata_Compound",
                                            "concentration": "Image_Metadata_Concentration"}),
                        on=["Image_Metadata_Compound", "Image_Metadata_Concentration"], how="left")
    if not include_unlabelled:
        table = table[table["moa"].notna()]
    if max_fields is not None:
        table = table.iloc[: int(max_fields)]
    chans = ("DAPI", "Tubulin", "Actin")
    images, rows = [], []
    for _, r in table.iterrows():
        planes = []
        for c in chans:
            f = root / str(r[f"Image_PathName_{c}"]) / str(r[f"Image_FileName_{c}"])
            if not f.is_file():
                raise _missing("bbbc021", f, "image file listed in BBBC021_v1_image.csv is absent")
            planes.append(read_image_file(f)[0])
        field = np.stack(planes)
        batch = str(r["Image_PathName_DAPI"]).split("/")[0].split("_")[0]
        for cell in crop_cells(field, crop, cells_per_field):
            images.append(cell)
            rows.append({"compound": r["Image_Metadata_Compound"], "concentration": r["Image_Metadata_Concentration"],
                         "moa": r["moa"], "plate": r.get("Image_Metadata_Plate_DAPI", ""), "batch": batch})
    if not images:
        raise _missing("bbbc021", root, "no cells found in the listed fields")
    return _finish(EvalData("bbbc021", images, [chans] * len(images), pd.DataFrame(rows), {"source": str(root)}),
                   size, max_images)


BRAY_CHANNELS = ("Hoechst", "ERSyto", "ERSytoBleed", "Ph_golgi", "Mito")


def load_bray(path: str | Path, channels: tuple[str, ...] = BRAY_CHANNELS, crop: int = 96, cells_per_field: int = 8,
              size: int | None = 64, max_images: int | None = None) -> EvalData:
    """Bray et al. Cell Painting: 5 per-channel TIFFs per site, compound metadata; single-cell crops."""
    root = Path(path)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise _missing("bray", root, "metadata.csv absent")
    table = pd.read_csv(meta, dtype={"plate": str, "well": str})
    images, rows = [], []
    nuc = channels.index("Hoechst") if "Hoechst" in channels else 0
    for _, r in table.iterrows():
        planes = []
        for c in channels:
            f = root / "images" / str(r["plate"]) / f"{r['well']}_s{r['site']}_{c}.tif"
            if not f.is_file():
                raise _missing("bray", f, "channel file listed by metadata.csv is absent")
            planes.append(read_image_file(f)[0])
        for cell in crop_cells(np.stack(planes), crop, cells_per_field, nucleus_channel=nuc):
            images.append(cell)
            rows.append({"compound": r["compound"], "concentration": r.get("concentration", 0),
                         "moa": r.get("moa", np.nan), "plate": r["plate"], "batch": r["plate"]})
    if not images:
        raise _missing("bray", root, "no cells found")
    return _finish(EvalData("bray", images, [tuple(channels)] * len(images), pd.DataFrame(rows),
                            {"source": str(root)}), size, max_images)


def load_deeploc_yeast(path: str | Path | None = None, size: int | None = None,
                       max_images: int | None = None) -> EvalData:
    """DeepLoc Schuldiner test set: 36 real 2-channel (GFP, bright field) yeast crops, 11 localisation classes."""
    p = Path(path) if path else PACKAGED_DIR
    f = p if p.is_file() else p / "schuldiner_test_64x64_2ch.npz"
    if not f.is_file():
        alt = p / "deeploc_schuldiner_test_64x64_2ch.npz"
        f = alt if alt.is_file() else f
    if not f.is_file():
        raise _missing("deeploc_yeast", p, "npz absent")
    with np.load(f) as z:
        imgs, labels = z["images"], z["labels"].astype(int)
        classes = [str(c) for c in z["class_names"]]
        chans = tuple("GFP" if "GFP" in str(c) else "brightfield" for c in z["channel_names"])
    df = pd.DataFrame({"label": labels, "localisation": [classes[i] for i in labels]})
    return _finish(EvalData("deeploc_yeast", list(imgs), [chans] * len(imgs), df,
                            {"source": str(f), "classes": classes}), size, max_images)


def load_npz(path: str | Path, size: int | None = None, max_images: int | None = None,
             name: str | None = None) -> EvalData:
    """A generic ``.npz`` with ``images (N,C,H,W)`` and ``labels`` (tests and users' own labelled sets)."""
    f = Path(path)
    if not f.is_file():
        raise _missing("npz", f, "file absent")
    with np.load(f, allow_pickle=False) as z:
        imgs = z["images"]
        chans = tuple(str(c) for c in z["channel_names"]) if "channel_names" in z else tuple(
            f"ch{i}" for i in range(imgs.shape[1]))
        df = pd.DataFrame({"label": z["labels"]})
        if "split" in z:
            df["split"] = [str(s) for s in z["split"]]
    return _finish(EvalData(name or f.stem, list(imgs), [chans] * len(imgs), df, {"source": str(f)}), size, max_images)


def load_synthetic(n: int = 200, channels: tuple[str, ...] = ("DNA", "protein", "membrane"), size: int = 64,
                   seed: int = 0, n_compounds: int = 0, name: str = "synthetic", **kwargs: Any) -> EvalData:
    """Synthetic cells from :mod:`chadavit.data.synthetic` (labels: localisation, stage, translocation, moa...)."""
    from chadavit.data.synthetic import generate_cells

    cells = generate_cells(n=n, channels=tuple(channels), size=size, seed=seed, n_compounds=n_compounds, **kwargs)
    names = list(cells.channel_names)
    if names and isinstance(names[0], str):
        names = [tuple(names)] * len(cells.images)
    return EvalData(name, list(cells.images), names, pd.DataFrame(cells.labels).reset_index(drop=True),
                    {"source": f"synthetic(n={n}, seed={seed})"})


ADAPTERS: dict[str, Callable[..., EvalData]] = {
    "bloodmnist": load_bloodmnist,
    "bbbc048": load_bbbc048,
    "cyclops": load_cyclops,
    "nfkb": load_nfkb,
    "bbbc021": load_bbbc021,
    "bray": load_bray,
    "deeploc_yeast": load_deeploc_yeast,
    "npz": load_npz,
    "synthetic": load_synthetic,
}


def _load_real(**kwargs: Any) -> EvalData:
    """Suite `real`: single-cell crops of real fields with classically measured targets (evaluation/real/)."""
    from chadavit.evaluation.real.store import load_real

    return load_real(**kwargs)


ADAPTERS["real"] = _load_real


def load_dataset(adapter: str, **kwargs: Any) -> EvalData:
    """Dispatch to an adapter by name (``ADAPTERS``)."""
    if adapter not in ADAPTERS:
        raise ValueError(f"unknown dataset adapter {adapter!r}; choose one of {', '.join(ADAPTERS)}")
    return ADAPTERS[adapter](**kwargs)
