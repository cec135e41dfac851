"""BBBC048 Jurkat cell cycle: ``CellCycle/<class>/<id>_Ch3/4/6.ome.jpg`` as ``CellCycle.zip`` unpacks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.data.readers import read_image_file
from chadavit.evaluation.data import EvalData, resize_images
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
from chadavit.evaluation.datasets.extract import (
    ArchiveError,
    find_dir,
    find_file,
    publish_dir,
    safe_extract,
    scratch_dir,
)
from chadavit.evaluation.datasets.fetching import Fetch
from chadavit.evaluation.datasets.registry import DatasetInfo, PaperDataset, register

CLASSES = ("Anaphase", "G1", "G2", "Metaphase", "Prophase", "S", "Telophase")
CHANNELS = ("Ch3", "Ch4", "Ch6")  # bright field, fluorescence marker, dark field (ImageStream channel numbers)
LAYOUT = """\
BBBC048 Jurkat cell cycle (https://bbbc.broadinstitute.org/BBBC048; `chadavit datasets fetch bbbc048`):
  PATH/CellCycle/<class>/<id>_Ch3.ome.jpg, <id>_Ch4.ome.jpg, <id>_Ch6.ome.jpg   (one grey JPEG per channel)
  class folders Anaphase G1 G2 Metaphase Prophase S Telophase (labels come from the folder name)"""

BBBC048_URL = "https://data.broadinstitute.org/bbbc/BBBC048/BBBC048v1.zip"
INFO = DatasetInfo("bbbc048", "BBBC048 Jurkat cell cycle (7 stages, ImageStream Ch3/Ch4/Ch6)", BBBC048_URL,
                   "32,266 cells x 3 JPEGs of 66x66 px (archive size not published)", "not found (code BSD-3)",
                   "Eulenberg et al., Nat Commun 8:463 (2017), doi:10.1038/s41467-017-00623-3; Ljosa et al. 2012",
                   "automatic")

_RX = re.compile(r"^(?P<id>\d+)_(?P<channel>Ch\d+)(?:\.ome)?\.(?:jpe?g|png|tiff?)$", re.IGNORECASE)


def cellcycle_dir(root: Path) -> Path:
    """``PATH/CellCycle`` (or PATH itself when the class folders sit directly in it)."""
    return root / "CellCycle" if (root / "CellCycle").is_dir() else root


def index_bbbc048(path: str | Path, channels: tuple[str, ...] = CHANNELS) -> pd.DataFrame:
    """One row per cell with all ``channels`` present: ``id``, ``stage`` and one file column per channel."""
    root = Path(path)
    base = cellcycle_dir(root)
    if not base.is_dir():
        raise layout_error("bbbc048", LAYOUT, root, "folder absent")
    rows = []
    for cls_dir in sorted(d for d in base.iterdir() if d.is_dir() and d.name in CLASSES):
        groups: dict[str, dict[str, Path]] = {}
        for f in sorted(cls_dir.iterdir()):
            m = _RX.match(f.name)
            if m:
                groups.setdefault(m["id"], {})[m["channel"]] = f
        for cid, files in groups.items():
            if all(c in files for c in channels):
                rows.append({"id": cid, "stage": cls_dir.name} | {c: files[c] for c in channels})
    if not rows:
        raise layout_error("bbbc048", LAYOUT, base, f"no class folder ({', '.join(CLASSES)}) holds files "
                           f"<id>_{'/'.join(channels)}.ome.jpg")
    return pd.DataFrame(rows)


def official_split() -> pd.DataFrame:
    """The ChAda-ViT split (``stage,id,split``)."""
    return read_official_split(META_DIR / "bbbc048_chadavit_split.csv.gz")


def load_bbbc048(path: str | Path, channels: tuple[str, ...] = CHANNELS, size: int | None = 64,
                 max_images: int | None = None, split: str = "official") -> EvalData:
    """Jurkat ImageStream cells, 7 stages. ``split``: ``official`` (the ChAda-ViT split files; cells in neither
    file are left out and counted), ``grouped`` (fixed, by cell id) or ``random`` (per seed)."""
    check_split_mode("bbbc048", split, ("official", "grouped", "random"))
    table = index_bbbc048(path, tuple(channels))
    table, how, excluded = apply_split(
        table, split, official_split, ["stage", "id"],
        lambda: layout_error("bbbc048", LAYOUT, Path(path), "no cell id matches the official ChAda-ViT split "
                             "(use split: random for a different cell set)"))
    images = []
    for _, r in table.iterrows():
        planes = [read_image_file(r[c])[0] for c in channels]
        if len({pl.shape for pl in planes}) > 1:
            planes = [p[0] for p in resize_images([pl[None] for pl in planes], planes[0].shape[0])]
        images.append(np.stack(planes))
    labels = table.drop(columns=list(channels)).reset_index(drop=True)
    if size is None and len({im.shape for im in images}) > 1:
        size = 64
    info = {"source": str(path), "split": split_note(labels, how), "excluded": excluded}
    return finish(EvalData("bbbc048", images, [tuple(channels)] * len(images), labels, info), size, max_images)


# ------------------------------------------------------------------------------------- fetch and check
def fetch_bbbc048(f: Fetch) -> None:
    if (f.target / "CellCycle").is_dir():
        f.say(f"{f.target / 'CellCycle'} present, skipped")
        return
    archive = f.get(BBBC048_URL, "BBBC048v1.zip", f.downloads / "BBBC048v1.zip")
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


def check_bbbc048(root: Path) -> str:
    t = index_bbbc048(root)
    shape = first_readable("bbbc048", LAYOUT, [t[CHANNELS[0]].iloc[0]])
    n_off = len(t.merge(official_split(), on=["stage", "id"]))
    return (f"{len(t):,} cells with Ch3/Ch4/Ch6 in {t['stage'].nunique()} classes, {shape[1]}x{shape[2]} px; "
            f"{n_off:,} of them in the official ChAda-ViT split")


DATASET = register(PaperDataset(INFO, LAYOUT, load_bbbc048, fetch_bbbc048, check_bbbc048))
