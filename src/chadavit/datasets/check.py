"""`chadavit datasets check NAME DIR`: validate a layout (fetched or made by hand) without loading every image;
the first problem found is raised as a one-line-first `DatasetLayoutError` naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from chadavit.data.readers import read_image_file
from chadavit.datasets.catalog import get
from chadavit.evaluation.data import DatasetLayoutError
from chadavit.evaluation.datasets import bbbc021, bbbc048, bloodmnist, bray, cyclops, nfkb
from chadavit.evaluation.datasets.common import layout_error


def _first_readable(name: str, layout: str, files: list[Path], channels: int | None = None) -> tuple[int, ...]:
    f = files[0]
    try:
        img = read_image_file(f)
    except (ValueError, OSError) as exc:
        raise layout_error(name, layout, f, f"cannot be read ({exc})") from None
    if channels is not None and img.shape[0] < channels:
        raise layout_error(name, layout, f, f"{img.shape[0]} channel(s), expected {channels}")
    return tuple(img.shape)


def check_bloodmnist(root: Path) -> str:
    f = bloodmnist.find_npz(root, None)
    if not f.is_file():
        raise layout_error("bloodmnist", bloodmnist.LAYOUT, root, "no bloodmnist*.npz")
    parts = []
    with np.load(f, allow_pickle=False) as z:
        for s in ("train", "val", "test"):
            for k in (f"{s}_images", f"{s}_labels"):
                if k not in z:
                    raise layout_error("bloodmnist", bloodmnist.LAYOUT, f, f"key {k} absent")
            imgs, labels = z[f"{s}_images"], z[f"{s}_labels"]
            if imgs.ndim != 4 or imgs.shape[-1] != 3 or len(labels) != len(imgs):
                raise layout_error("bloodmnist", bloodmnist.LAYOUT, f, f"{s}: images {imgs.shape}, labels "
                                   f"{labels.shape}; expected (N,H,W,3) and (N,1)")
            if labels.size and (labels.min() < 0 or labels.max() >= len(bloodmnist.CLASSES)):
                raise layout_error("bloodmnist", bloodmnist.LAYOUT, f, f"{s}: labels outside 0..7")
            parts.append(f"{s} {len(imgs):,}")
    return f"{f.name}: " + ", ".join(parts) + f"; {imgs.shape[1]}x{imgs.shape[2]} px"


def check_bbbc048(root: Path) -> str:
    t = bbbc048.index_bbbc048(root)
    shape = _first_readable("bbbc048", bbbc048.LAYOUT, [t[bbbc048.CHANNELS[0]].iloc[0]])
    n_off = len(t.merge(bbbc048.official_split(), on=["stage", "id"]))
    return (f"{len(t):,} cells with Ch3/Ch4/Ch6 in {t['stage'].nunique()} classes, {shape[1]}x{shape[2]} px; "
            f"{n_off:,} of them in the official ChAda-ViT split")


def check_cyclops(root: Path) -> str:
    t = cyclops.index_cyclops(root)
    _first_readable("cyclops", cyclops.LAYOUT, [t["GFP"].iloc[0]])
    n_off = len(t.merge(cyclops.official_split(), on=["localisation", "id"]))
    if n_off == 0:
        raise layout_error("cyclops", cyclops.LAYOUT, root, "no (class, id) matches the official ChAda-ViT split")
    return f"{len(t):,} cells with GFP+RFP in {t['localisation'].nunique()} classes; {n_off:,} in the official split"


def check_nfkb(root: Path) -> str:
    t = nfkb.index_nfkb(root)
    _first_readable("nfkb", nfkb.LAYOUT, [t["file"].iloc[0]], channels=3)
    return f"{len(t):,} cells listed and present (train {int((t['split'] == 'train').sum()):,}, " \
           f"test {int((t['split'] == 'test').sum()):,})"


def check_bbbc021(root: Path) -> str:
    t, counts = bbbc021.index_bbbc021(root)
    _first_readable("bbbc021", bbbc021.LAYOUT, [t["DAPI"].iloc[0]])
    return (f"{counts['plates_present']} of {counts['plates_listed']} plates present; {len(t):,} annotated or DMSO "
            f"fields with all three channels")


def check_bray(root: Path) -> str:
    t = bray.annotate(root, bray.index_bray(root))
    _first_readable("bray", bray.LAYOUT, [t["Hoechst"].iloc[0]])
    no_moa = t["moa"].isna()
    return (f"{len(t):,} sites with five channels on {t['plate'].nunique()} plate(s); {int((~no_moa).sum()):,} sites "
            f"of DMSO or compounds with an MoA, {int(t.loc[no_moa, 'compound'].nunique())} compound(s) without one")


CHECKS: dict[str, Callable[[Path], str]] = {
    "bbbc021": check_bbbc021, "bbbc048": check_bbbc048, "bloodmnist": check_bloodmnist,
    "cyclops": check_cyclops, "nfkb": check_nfkb, "bray": check_bray,
}


def check(name: str, path: str | Path) -> str:
    """A one-line summary of a valid layout; raises `DatasetLayoutError` at the first problem."""
    get(name)
    root = Path(path)
    if not root.is_dir():
        raise DatasetLayoutError(f"{name}: {root} is not a folder")
    return CHECKS[name](root)
