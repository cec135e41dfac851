"""CYCLoPs yeast localisation: ``<CLASS>/<CLASS>_<id>_{gfp,rfp}.tif`` as DeepLoc's Chong sets unpack
(Lu et al.'s ``unpackage_test_set.py``), the layout the official ChAda-ViT code reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.data.readers import read_image_file
from chadavit.evaluation.data import EvalData
from chadavit.evaluation.datasets.checking import first_readable
from chadavit.evaluation.datasets.common import (
    META_DIR,
    apply_split,
    check_split_mode,
    finish,
    layout_error,
    read_official_split,
    split_note,
)
from chadavit.evaluation.datasets.fetching import Fetch, manual_steps
from chadavit.evaluation.datasets.registry import DatasetInfo, PaperDataset, register

CLASSES = ("ACTIN", "BUDNECK", "BUDTIP", "CELLPERIPHERY", "CYTOPLASM", "ENDOSOME", "ER", "GOLGI", "MITOCHONDRIA",
           "NUCLEARPERIPHERY", "NUCLEI", "NUCLEOLUS", "PEROXISOME", "SPINDLE", "SPINDLEPOLE", "VACUOLARMEMBRANE",
           "VACUOLE")
CHANNELS = ("GFP", "RFP")  # fixed order (the official code iterates a Python set, whose order varies)
LAYOUT = """\
CYCLoPs yeast localisation (DeepLoc Chong sets, Kraus et al. 2017; manual steps: `chadavit datasets fetch cyclops`):
  PATH/<CLASS>/<CLASS>_<id>_gfp.tif and PATH/<CLASS>/<CLASS>_<id>_rfp.tif   (64x64; PATH/images/... also accepted)
  17 class folders ACTIN BUDNECK ... VACUOLE; <id> is the integer id of the ChAda-ViT split files (e.g. 24370)"""

DEEPLOC_URL = "http://spidey.ccbr.utoronto.ca/~okraus/DeepLoc_full_datasets.zip"
INFO = DatasetInfo("cyclops", "CYCLoPs yeast protein localisation (17 classes, GFP + RFP)",
                   DEEPLOC_URL + " (DeepLoc Chong sets, unpacked by Lu et al.'s script)",
                   "28,166 cells of 2x64x64 in the ChAda-ViT splits", "not found (DeepLoc code BSD-3)",
                   "Koh et al., G3 5:1223 (2015), doi:10.1534/g3.115.017830; Kraus et al., Mol Syst Biol 2017",
                   "manual")
MANUAL = f"""\
CYCLoPs cannot be fetched automatically: the images ChAda-ViT used are DeepLoc's Chong et al. sets unpacked by a
third-party script (no archive of the unpacked crops is published). To build {{target}}:
  1. wget {DEEPLOC_URL}
     unzip DeepLoc_full_datasets.zip        # -> DeepLoc_full_datasets/datasets/Chong_{{train,valid,test}}_set.hdf5
  2. git clone https://github.com/alexxijielu/paired_cell_inpainting
     run yeast_model/preprocessing/unpackage_test_set.py on those three files, in its order test, valid, train
     (it writes images/<CLASS>/<CLASS>_<id>_gfp.tif and _rfp.tif with a running id; needs h5py, numpy, PIL)
  3. mv images/* {{target}}/            # class folders directly in {{target}} (or keep {{target}}/images/)
  4. chadavit datasets check cyclops {{target}}
The official ChAda-ViT split (packaged) is matched on (class, id); cells in neither split file are left out."""


def class_root(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


def index_cyclops(path: str | Path) -> pd.DataFrame:
    """One row per cell with both channel files: ``id`` (official integer id), ``localisation``, ``GFP``, ``RFP``."""
    root = Path(path)
    base = class_root(root)
    if not base.is_dir():
        raise layout_error("cyclops", LAYOUT, root, "folder absent")
    rows = []
    for cls_dir in sorted(d for d in base.iterdir() if d.is_dir()):
        rx = re.compile(rf"^{re.escape(cls_dir.name)}_(?P<id>\d+)_(?P<channel>gfp|rfp)\.tiff?$", re.IGNORECASE)
        groups: dict[str, dict[str, Path]] = {}
        for f in sorted(cls_dir.iterdir()):
            m = rx.match(f.name)
            if m:
                groups.setdefault(m["id"], {})[m["channel"].upper()] = f
        rows += [{"id": cid, "localisation": cls_dir.name} | files for cid, files in groups.items()
                 if set(files) == set(CHANNELS)]
    if not rows:
        raise layout_error("cyclops", LAYOUT, base, "no class folder holds <CLASS>_<id>_gfp.tif/_rfp.tif pairs")
    return pd.DataFrame(rows)


def official_split() -> pd.DataFrame:
    """The ChAda-ViT split (``localisation,id,split``)."""
    return read_official_split(META_DIR / "cyclops_chadavit_split.csv.gz")


def load_cyclops(path: str | Path, size: int | None = 64, max_images: int | None = None,
                 split: str = "official") -> EvalData:
    """2-channel (GFP, RFP) yeast cells, 17 classes. ``split``: ``official`` (ChAda-ViT files, matched on class and
    integer id; cells in neither file are left out and counted), ``grouped`` (fixed, by id) or ``random``."""
    check_split_mode("cyclops", split, ("official", "grouped", "random"))
    table = index_cyclops(path)
    table, how, excluded = apply_split(
        table, split, official_split, ["localisation", "id"],
        lambda: layout_error("cyclops", LAYOUT, Path(path), "no (class, id) matches the official ChAda-ViT split; "
                             "file names must be <CLASS>_<id>_gfp.tif with the official integer ids"))
    images = [np.stack([read_image_file(r[c])[0] for c in CHANNELS]) for _, r in table.iterrows()]
    labels = table.drop(columns=list(CHANNELS)).reset_index(drop=True)
    if size is None and len({im.shape for im in images}) > 1:
        size = 64
    info = {"source": str(path), "classes": CLASSES, "split": split_note(labels, how), "excluded": excluded}
    return finish(EvalData("cyclops", images, [CHANNELS] * len(images), labels, info), size, max_images)


# ------------------------------------------------------------------------------------- fetch and check
def fetch_cyclops(f: Fetch) -> None:
    f.say(manual_steps("cyclops", str(f.target)))


def check_cyclops(root: Path) -> str:
    t = index_cyclops(root)
    first_readable("cyclops", LAYOUT, [t["GFP"].iloc[0]])
    n_off = len(t.merge(official_split(), on=["localisation", "id"]))
    if n_off == 0:
        raise layout_error("cyclops", LAYOUT, root, "no (class, id) matches the official ChAda-ViT split")
    return f"{len(t):,} cells with GFP+RFP in {t['localisation'].nunique()} classes; {n_off:,} in the official split"


DATASET = register(PaperDataset(INFO, LAYOUT, load_cyclops, fetch_cyclops, check_cyclops, MANUAL))
