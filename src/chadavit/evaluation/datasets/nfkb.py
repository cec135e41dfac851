"""NF-kB translocation (HCC1143, TNF-alpha): the ChAda-ViT target CSVs (``cat,image_name,ratio``) and
``256x256/<cat>/<image_name>`` RGB PNG crops, the layout the official code reads."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.data.readers import read_image_file
from chadavit.evaluation.data import EvalData, EvalInputError
from chadavit.evaluation.datasets.checking import first_readable
from chadavit.evaluation.datasets.common import (
    META_DIR,
    check_split_mode,
    finish,
    grouped_split,
    layout_error,
    split_note,
)
from chadavit.evaluation.datasets.fetching import Fetch, manual_steps, write_bytes
from chadavit.evaluation.datasets.registry import DatasetInfo, PaperDataset, register

# RGB plane -> channel name. Green is the NF-kB stain: the target is the "green cell/nucleus ratio" of the
# Phenexplain source data (Lamiable et al. 2023). The stains in red and blue are not published, so those planes
# keep neutral names; planes that are zero in every image are dropped (see `load_nfkb`).
CHANNEL_NAMES = {"R": "red", "G": "NF-kB", "B": "blue"}
SPLIT_FILES = {"train": "single_ratio_images_train.csv", "val": "single_ratio_images_val.csv"}
LAYOUT = """\
NF-kB translocation (ChAda-ViT targets; images not public under these names, see `chadavit datasets fetch nfkb`):
  PATH/analyse_256x256/single_ratio_images_train.csv and ..._val.csv   columns cat,image_name,ratio
  PATH/256x256/<cat>/<image_name>   256x256 RGB PNG per cell (green = NF-kB),
                                    e.g. 256x256/0/170721_L02_3_1206_882.png"""

INFO = DatasetInfo("nfkb", "NF-kB nuclear translocation, HCC1143 + TNF-alpha (regression of the ratio)",
                   "ChAda-ViT target CSVs (packaged); images: Phenexplain, Zenodo 8287453 (renamed, see docs)",
                   "10,571 RGB PNG crops of 256x256", "CSVs Apache-2.0; images reportedly CC BY 4.0 (unverified)",
                   "Lamiable et al., Nat Commun 14:6386 (2023), doi:10.1038/s41467-023-42124-6; Bourriez et al. 2024",
                   "manual (targets automatic)")
MANUAL = """\
The NF-kB target CSVs (cat,image_name,ratio; the official ChAda-ViT files) were written to
  {target}/analyse_256x256/single_ratio_images_{train,val}.csv
The cell images are not published under these names (the Phenexplain release, Zenodo record 8287453,
translocation_256.zip, holds the same cells renamed and without ratios). If you have the original crops
(from the authors):
  1. put each crop at {target}/256x256/<cat>/<image_name>   (256x256 RGB PNG, green = NF-kB)
  2. chadavit datasets check nfkb {target}"""


def packaged_targets(part: str) -> pd.DataFrame:
    """The official target CSV shipped with the package (identical to the ChAda-ViT repository's)."""
    with gzip.open(META_DIR / f"nfkb_{SPLIT_FILES[part].removesuffix('.csv')}.csv.gz", "rb") as f:
        return pd.read_csv(io.BytesIO(f.read()))


def read_targets(root: Path) -> pd.DataFrame:
    """Both target CSVs with a ``split`` column (train -> train, val -> test), from PATH/analyse_256x256."""
    parts = []
    for part, fname in SPLIT_FILES.items():
        f = root / "analyse_256x256" / fname
        if not f.is_file():
            raise layout_error("nfkb", LAYOUT, root, f"analyse_256x256/{fname} absent")
        t = pd.read_csv(f)
        if not {"cat", "image_name", "ratio"} <= set(t.columns):
            raise layout_error("nfkb", LAYOUT, f, f"columns {list(t.columns)} lack cat,image_name,ratio")
        parts.append(t.assign(split="train" if part == "train" else "test"))
    return pd.concat(parts, ignore_index=True)


def index_nfkb(path: str | Path) -> pd.DataFrame:
    """Targets plus the ``file`` of every listed cell; names the first listed image that is absent."""
    root = Path(path)
    table = read_targets(root)
    table["file"] = [root / "256x256" / str(c) / str(n) for c, n in zip(table["cat"], table["image_name"])]
    for f in table["file"]:
        if not f.is_file():
            raise layout_error("nfkb", LAYOUT, f, "image listed in the target CSV is absent")
    return table


def load_nfkb(path: str | Path, channels: tuple[str, ...] = ("R", "G", "B"), size: int | None = 64,
              max_images: int | None = None, split: str = "official") -> EvalData:
    """Cells with the ``translocation`` target (the published ratio). ``channels`` picks RGB planes by letter;
    planes that are zero in every image carry no stain and are dropped. ``split``: ``official`` (ChAda-ViT
    train/val files), ``grouped`` (fixed, by well: no well on both sides) or ``random``."""
    check_split_mode("nfkb", split, ("official", "grouped", "random"))
    bad = [c for c in channels if c not in CHANNEL_NAMES]
    if bad:
        raise EvalInputError(f"nfkb: channels must be RGB letters {list(CHANNEL_NAMES)}, got {bad}")
    table = index_nfkb(path)
    planes = ["RGB".index(c) for c in channels]
    images = []
    for f in table["file"]:
        img = read_image_file(f)
        if img.shape[0] < 3:
            raise layout_error("nfkb", LAYOUT, f, f"{img.shape[0]} channel(s); the crops are RGB PNGs")
        images.append(np.ascontiguousarray(img[planes]))
    used = [i for i in range(len(planes)) if any(im[i].any() for im in images)]
    dropped = [channels[i] for i in range(len(planes)) if i not in used]
    if dropped and used:
        images = [np.ascontiguousarray(im[used]) for im in images]
    names = tuple(CHANNEL_NAMES[channels[i]] for i in (used or range(len(planes))))
    labels = table.drop(columns="file").rename(columns={"ratio": "translocation"})
    labels["well"] = labels["image_name"].astype(str).str.split("_").str[1]
    how = "official ChAda-ViT split (train.csv -> train, val.csv -> test)"
    if split == "grouped":
        labels["split"] = grouped_split(labels["well"])
        how = "fixed split by well (30 % of wells test)"
    elif split == "random":
        labels = labels.drop(columns="split")
        how = "random per seed"
    info = {"source": str(path), "split": split_note(labels, how), "channels": names,
            "dropped_empty_planes": dropped}
    return finish(EvalData("nfkb", images, [names] * len(images), labels, info), size, max_images)


# ------------------------------------------------------------------------------------- fetch and check
def fetch_nfkb(f: Fetch) -> None:
    for part in ("train", "val"):
        name = f"single_ratio_images_{part}.csv"
        with gzip.open(META_DIR / f"nfkb_{name}.gz", "rb") as src:
            write_bytes(f.target / "analyse_256x256" / name, src.read())
    f.say(manual_steps("nfkb", str(f.target)))


def check_nfkb(root: Path) -> str:
    t = index_nfkb(root)
    first_readable("nfkb", LAYOUT, [t["file"].iloc[0]], channels=3)
    return f"{len(t):,} cells listed and present (train {int((t['split'] == 'train').sum()):,}, " \
           f"test {int((t['split'] == 'test').sum()):,})"


DATASET = register(PaperDataset(INFO, LAYOUT, load_nfkb, fetch_nfkb, check_nfkb, MANUAL))
