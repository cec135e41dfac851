"""Adapters that are not paper benchmarks: the packaged DeepLoc yeast set, a generic npz, synthetic cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from chadavit.evaluation.data import EvalData
from chadavit.evaluation.datasets.common import finish, layout_error

PACKAGED_DIR = Path(__file__).resolve().parents[1] / "data"
DEEPLOC_LAYOUT = """\
DeepLoc Schuldiner test set (Kraus et al. 2017, github okraus/DeepLoc, BSD-3):
  PATH/schuldiner_test_64x64_2ch.npz  keys images (N,2,64,64) uint16, labels, class_names, channel_names
  (a copy ships in chadavit/evaluation/data/)"""
NPZ_LAYOUT = """\
Generic npz: PATH (file) with images (N,C,H,W), labels (N,) and optional channel_names (C,), class_names, split"""


def load_deeploc_yeast(path: str | Path | None = None, size: int | None = None,
                       max_images: int | None = None) -> EvalData:
    """DeepLoc Schuldiner test set: 36 real 2-channel (GFP, bright field) yeast crops, 11 localisation classes."""
    import numpy as np

    p = Path(path) if path else PACKAGED_DIR
    f = p if p.is_file() else p / "schuldiner_test_64x64_2ch.npz"
    if not f.is_file():
        alt = p / "deeploc_schuldiner_test_64x64_2ch.npz"
        f = alt if alt.is_file() else f
    if not f.is_file():
        raise layout_error("deeploc_yeast", DEEPLOC_LAYOUT, p, "npz absent")
    with np.load(f) as z:
        imgs, labels = z["images"], z["labels"].astype(int)
        classes = [str(c) for c in z["class_names"]]
        chans = tuple("GFP" if "GFP" in str(c) else "brightfield" for c in z["channel_names"])
    df = pd.DataFrame({"label": labels, "localisation": [classes[i] for i in labels]})
    return finish(EvalData("deeploc_yeast", list(imgs), [chans] * len(imgs), df,
                           {"source": str(f), "classes": classes}), size, max_images)


def load_npz(path: str | Path, size: int | None = None, max_images: int | None = None,
             name: str | None = None) -> EvalData:
    """A generic ``.npz`` with ``images (N,C,H,W)`` and ``labels`` (tests and users' own labelled sets)."""
    import numpy as np

    f = Path(path)
    if not f.is_file():
        raise layout_error("npz", NPZ_LAYOUT, f, "file absent")
    with np.load(f, allow_pickle=False) as z:
        imgs = z["images"]
        chans = tuple(str(c) for c in z["channel_names"]) if "channel_names" in z else tuple(
            f"ch{i}" for i in range(imgs.shape[1]))
        df = pd.DataFrame({"label": z["labels"]})
        if "split" in z:
            df["split"] = [str(s) for s in z["split"]]
    return finish(EvalData(name or f.stem, list(imgs), [chans] * len(imgs), df, {"source": str(f)}), size, max_images)


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
