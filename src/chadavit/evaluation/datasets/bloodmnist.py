"""BloodMNIST (MedMNIST v2): the published ``bloodmnist[_SIZE].npz`` with its train, val and test splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.evaluation.data import EvalData, EvalInputError
from chadavit.evaluation.datasets.common import check_split_mode, finish, layout_error, split_note
from chadavit.evaluation.datasets.fetching import Fetch, SubsetError
from chadavit.evaluation.datasets.registry import DatasetInfo, PaperDataset, register

CLASSES = ("basophil", "eosinophil", "erythroblast", "immature granulocyte", "lymphocyte", "monocyte",
           "neutrophil", "platelet")
SIZES = (28, 64, 128, 224)
LAYOUT = """\
BloodMNIST (MedMNIST v2, https://zenodo.org/records/10519652, CC BY 4.0; `chadavit datasets fetch bloodmnist`):
  PATH/bloodmnist.npz (28 px) or PATH/bloodmnist_{64,128,224}.npz, keys train_images (N,H,W,3) uint8,
  train_labels (N,1), val_images, val_labels, test_images, test_labels  (8 classes)"""

ZENODO_MEDMNIST = "https://zenodo.org/records/10519652/files/"
# MD5s published by MedMNIST (medmnist/info.py, v3.0.2) for Zenodo record 10519652
BLOODMNIST_MD5 = {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
                  128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"}
INFO = DatasetInfo("bloodmnist", "BloodMNIST (MedMNIST v2), 8 blood-cell classes, RGB",
                   ZENODO_MEDMNIST + "bloodmnist[_64|_128|_224].npz (Zenodo 10519652, MD5 published)",
                   "17,092 images (train 11,959 / val 1,712 / test 3,421) per size", "CC BY 4.0",
                   "Yang et al., Sci Data 10:41 (2023); Acevedo et al., Data in Brief 2020", "automatic")


def npz_name(image_size: int) -> str:
    """MedMNIST's file name for one image size (``bloodmnist.npz`` is the 28-px one)."""
    if int(image_size) not in SIZES:
        raise EvalInputError(f"bloodmnist: image_size {image_size} is not one of the published sizes {SIZES}")
    return "bloodmnist.npz" if int(image_size) == 28 else f"bloodmnist_{int(image_size)}.npz"


def find_npz(path: Path, image_size: int | None) -> Path:
    if path.is_file():
        return path
    if image_size is not None:
        return path / npz_name(image_size)
    for s in SIZES:  # the first published size present
        if (path / npz_name(s)).is_file():
            return path / npz_name(s)
    return path / "bloodmnist.npz"


def load_bloodmnist(path: str | Path, size: int | None = None, max_images: int | None = None,
                    image_size: int | None = None, split: str = "official",
                    splits: tuple[str, ...] = ("train", "val", "test")) -> EvalData:
    """RGB blood-cell images, 8 classes. ``split="official"``: MedMNIST's train / val / test (the probe trains on
    train and scores test; val is kept but unused); ``"random"``: a fresh split per seed."""
    check_split_mode("bloodmnist", split, ("official", "random"))
    f = find_npz(Path(path), image_size)
    if not f.is_file():
        raise layout_error("bloodmnist", LAYOUT, Path(path), f"{f.name} absent")
    images: list[np.ndarray] = []
    labels: list[int] = []
    part: list[str] = []
    with np.load(f, allow_pickle=False) as z:
        for s in splits:
            if f"{s}_images" not in z or f"{s}_labels" not in z:
                raise layout_error("bloodmnist", LAYOUT, f, f"key {s}_images or {s}_labels absent")
            imgs = z[f"{s}_images"]
            imgs = imgs[..., None] if imgs.ndim == 3 else imgs
            images += list(np.ascontiguousarray(np.moveaxis(imgs, -1, 1)))
            labels += z[f"{s}_labels"].reshape(-1).astype(int).tolist()
            part += [s] * len(imgs)
    df = pd.DataFrame({"label": labels, "split": part})
    df["class_name"] = [CLASSES[i] if 0 <= i < len(CLASSES) else str(i) for i in labels]
    how = "MedMNIST official train/val/test (probe: train -> test, val unused)"
    if split == "random":
        df = df.drop(columns="split")
        how = "random per seed (stratified)"
    names = [("R", "G", "B")[: im.shape[0]] for im in images]
    info = {"source": str(f), "classes": CLASSES, "split": split_note(df, how)}
    return finish(EvalData("bloodmnist", images, names, df, info), size, max_images)


# ------------------------------------------------------------------------------------- fetch and check
def fetch_bloodmnist(f: Fetch) -> None:
    sizes = [int(s) for s in (f.subset or ["28"])]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        raise SubsetError(f"bloodmnist: --subset takes image sizes {list(SIZES)}, got {bad}")
    for s in sizes:
        name = npz_name(s)
        f.get(f"{ZENODO_MEDMNIST}{name}?download=1", name, f.target / name, md5=BLOODMNIST_MD5[s])


def check_bloodmnist(root: Path) -> str:
    f = find_npz(root, None)
    if not f.is_file():
        raise layout_error("bloodmnist", LAYOUT, root, "no bloodmnist*.npz")
    parts = []
    with np.load(f, allow_pickle=False) as z:
        for s in ("train", "val", "test"):
            for k in (f"{s}_images", f"{s}_labels"):
                if k not in z:
                    raise layout_error("bloodmnist", LAYOUT, f, f"key {k} absent")
            imgs, labels = z[f"{s}_images"], z[f"{s}_labels"]
            if imgs.ndim != 4 or imgs.shape[-1] != 3 or len(labels) != len(imgs):
                raise layout_error("bloodmnist", LAYOUT, f, f"{s}: images {imgs.shape}, labels "
                                   f"{labels.shape}; expected (N,H,W,3) and (N,1)")
            if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
                raise layout_error("bloodmnist", LAYOUT, f, f"{s}: labels outside 0..7")
            parts.append(f"{s} {len(imgs):,}")
    return f"{f.name}: " + ", ".join(parts) + f"; {imgs.shape[1]}x{imgs.shape[2]} px"


DATASET = register(PaperDataset(INFO, LAYOUT, load_bloodmnist, fetch_bloodmnist, check_bloodmnist))
