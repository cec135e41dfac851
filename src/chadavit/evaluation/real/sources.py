"""The `real` suite's tasks: single-cell crops cut from real fields, with per-cell targets measured classically.

Every builder segments nuclei (:func:`chadavit.data.crops.find_nuclei`, or the given instance mask), measures
the target on the full-resolution field, and cuts a window centred on each nucleus (about 2.5 nucleus
diameters), resized to ``size``. The channels the model sees leave out the measured one where the task allows
(``shown``). Channel names follow the CellProfiler pipelines' (as the demo's pretraining data names them).
``group`` is ``field/block`` (a spatial block of the field): the suite splits by group, so
neighbouring, overlapping crops never sit on both sides of a split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chadavit.evaluation.real import measure as M

CP = "cellprofiler_examples"


class RealSourceMissing(FileNotFoundError):
    """The raw fields of a `real` task are not in the shared data folder."""


@dataclass
class CellSet:
    """Crops ``(N, C, size, size)`` of one task, the channel names shown, targets and split groups."""

    name: str
    crops: np.ndarray
    channels: tuple[str, ...]
    targets: dict[str, np.ndarray]
    groups: np.ndarray
    info: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> np.ndarray:
    import tifffile
    from PIL import Image

    if not path.is_file():
        raise RealSourceMissing(f"{path} is missing")
    if path.suffix.lower() in (".tif", ".tiff"):
        a = tifffile.imread(path)
    else:
        a = np.asarray(Image.open(path))
    if a.ndim == 3:  # an RGB(A) copy of a grey image: keep the first plane
        a = a[..., 0] if a.shape[-1] in (3, 4) else a[0]
    return a


def _cut(field_chw: np.ndarray, ys: Sequence[float], xs: Sequence[float], window: int, size: int) -> np.ndarray:
    from chadavit.data.crops import Crop, extract
    from chadavit.evaluation.data import resize_images

    crops = []
    for y, x in zip(ys, xs):
        y0, x0 = int(round(y)) - window // 2, int(round(x)) - window // 2
        crops.append(extract(field_chw, Crop(y0, x0, y0 + window, x0 + window)))
    crops = resize_images(crops, size)
    return np.stack(crops) if crops else np.zeros((0, field_chw.shape[0], size, size), field_chw.dtype)


def _window(areas: Sequence[int], factor: float = 2.5) -> int:
    d = 2.0 * math.sqrt(float(np.median(areas)) / math.pi)
    return max(16, int(round(factor * d / 2)) * 2)


def _nuclei(dna: np.ndarray, min_area: int) -> tuple[list, np.ndarray]:
    from chadavit.data.crops import find_nuclei

    nuclei, labels = find_nuclei(dna, min_area=min_area)
    h, w = dna.shape
    # drop nuclei touching the border: their measurement is of a partial nucleus
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    return [n for n in nuclei if n.label not in border], labels


def _objects(labels: np.ndarray) -> dict[int, tuple[slice, slice]]:
    from scipy import ndimage as ndi

    return {i + 1: s for i, s in enumerate(ndi.find_objects(labels)) if s is not None}


def _groups(field_name: str, nuclei: Sequence, shape: tuple[int, int], blocks: int) -> list[str]:
    return [f"{field_name}/b{M.spatial_block(n.y, n.x, shape[0], shape[1], blocks)}" for n in nuclei]


# ---------------------------------------------------------------------------------------------- tasks
def speckles_foci(shared: Path, size: int = 64, window: int = 64, stride: int = 24) -> CellSet:
    """gamma-H2AX foci per nuclear window (ExampleSpeckles); the model sees Hoechst and gamma-H2AX.

    The one field holds 8 whole nuclei, too few for a per-nucleus task, so each nucleus is covered by
    overlapping ``window``-pixel windows (centres on a ``stride`` grid inside it) at native resolution; the
    target is the number of foci (found per nucleus, :func:`measure.find_foci`) in the window's nucleus part.
    A nucleus is a split group, so overlapping windows never straddle the split.
    """
    d = shared / CP / "ExampleSpeckles"
    files = sorted(d.glob("*.tif"))
    hoe = next((f for f in files if "hoe" in f.name.lower()), None)
    h2ax = next((f for f in files if "h2ax" in f.name.lower()), None)
    if hoe is None or h2ax is None:
        raise RealSourceMissing(f"{d}: needs a *hoe*.tif and a *h2ax*.tif")
    dna, foci = _read(hoe), _read(h2ax)
    nuclei, labels = _nuclei(dna, min_area=100)
    objs = _objects(labels)
    ys, xs, counts, groups = [], [], [], []
    half = window // 2
    for n in nuclei:
        sl = objs[n.label]
        own = labels == n.label
        peaks = M.find_foci(foci[sl], own[sl]) + np.array([sl[0].start, sl[1].start])
        for cy in range(sl[0].start, sl[0].stop, stride):
            for cx in range(sl[1].start, sl[1].stop, stride):
                if not own[cy, cx]:
                    continue
                inside = (np.abs(peaks[:, 0] - cy) < half) & (np.abs(peaks[:, 1] - cx) < half)
                ys.append(cy)
                xs.append(cx)
                counts.append(int(inside.sum()))
                groups.append(f"speckles/n{n.label}")
    crops = _cut(np.stack([dna, foci]), ys, xs, window, size)
    return CellSet("speckles_foci", crops, ("DNA", "gH2AX"), {"foci": np.array(counts, np.float32)},
                   np.array(groups), {"source": "CellProfiler ExampleSpeckles (BSD-3)"})


def human_mitosis(shared: Path, size: int = 64) -> CellSet:
    """PH3-positive (mitotic) nuclei in ExampleHuman; the model sees DNA and cell body only, not PH3."""
    d = shared / CP / "ExampleHuman"
    paths = {k: next(iter(sorted(d.glob(f"*{k}.tif"))), d / f"missing_{k}.tif") for k in ("d0", "d1", "d2")}
    dna, ph3, body = (_read(paths[k]) for k in ("d0", "d1", "d2"))
    nuclei, labels = _nuclei(dna, min_area=20)
    objs = _objects(labels)
    ph3_mean = np.array([M.mean_intensity(ph3[objs[n.label]], labels[objs[n.label]] == n.label) for n in nuclei])
    areas = np.array([n.area for n in nuclei], np.float32)
    crops = _cut(np.stack([dna, body]), [n.y for n in nuclei], [n.x for n in nuclei], _window(areas, 3.0), size)
    return CellSet("human_mitosis", crops, ("DNA", "CellBody"),
                   {"mitotic": M.positive_by_otsu(ph3_mean).astype(np.int64), "nucleus_area": areas},
                   np.array(_groups("human", nuclei, dna.shape, 4)),
                   {"source": "CellProfiler ExampleHuman (Moffat et al. 2006, CC-0)"})


def colocalization(shared: Path, size: int = 64) -> CellSet:
    """Per-nucleus Pearson correlation of the two stains (ExampleColocalization); the model sees both."""
    d = shared / CP / "ExampleColocalization"
    fields = sorted({p.name[: -len("_N_G.png")] for p in d.glob("*_N_G.png")})
    if not fields:
        raise RealSourceMissing(f"{d}: no *_N_G.png")
    crops, r, groups = [], [], []
    for fname in fields:
        g, red = _read(d / f"{fname}_N_G.png"), _read(d / f"{fname}_N_R.png")
        both = g.astype(np.float32) / max(1.0, float(g.max())) + red.astype(np.float32) / max(1.0, float(red.max()))
        nuclei, labels = _nuclei(both, min_area=100)
        objs = _objects(labels)
        r += [M.pearson_in_mask(g[objs[n.label]], red[objs[n.label]], labels[objs[n.label]] == n.label)
              for n in nuclei]
        crops.append(_cut(np.stack([g, red]), [n.y for n in nuclei], [n.x for n in nuclei],
                          _window([n.area for n in nuclei]), size))
        groups += _groups(f"coloc{fname}", nuclei, g.shape, 3)
    return CellSet("colocalization", np.concatenate(crops), ("stain1", "stain2"),
                   {"pearson": np.array(r, np.float32)}, np.array(groups),
                   {"source": "CellProfiler ExampleColocalization (BSD-3)"})


def dsb_nuclei(shared: Path, size: int = 64) -> CellSet:
    """Nucleus area and DNA content (integrated intensity) from the DSB2018 image and its instance mask."""
    d = shared / "stardist_dsb2018_nuclei"
    img, mask = _read(d / "img2d.tif"), _read(d / "mask2d.tif").astype(np.int32)
    from skimage.measure import regionprops

    bg = float(np.median(img[mask == 0])) if (mask == 0).any() else 0.0
    border = set(np.unique(np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])).tolist())
    props = [p for p in regionprops(mask) if p.label not in border and p.area >= 10]
    ys, xs = [p.centroid[0] for p in props], [p.centroid[1] for p in props]
    areas = np.array([p.area for p in props], np.float32)
    dna = np.array([M.integrated_intensity(img[p.slice], p.image, bg) for p in props], np.float32)
    crops = _cut(img[None], ys, xs, _window(areas), size)
    groups = [f"dsb/b{M.spatial_block(y, x, img.shape[0], img.shape[1], 4)}" for y, x in zip(ys, xs)]
    return CellSet("dsb_nuclei", crops, ("DNA",), {"nucleus_area": areas, "dna_content": dna}, np.array(groups),
                   {"source": "DSB2018 via stardist test image (CC0 / BSD-3)"})


def fly_nuclei(shared: Path, size: int = 64, per_site: int = 100) -> CellSet:
    """Nucleus area and DNA content in ExampleFly (3 sites, a seeded ``per_site`` nuclei each); the model sees
    DNA and the two other channels."""
    d = shared / CP / "ExampleFly"
    sites = sorted({p.name[: -len("_D.TIF")] for p in d.glob("*_D.TIF")})
    if not sites:
        raise RealSourceMissing(f"{d}: no *_D.TIF")
    crops, area, dna_c, groups = [], [], [], []
    for s in sites:
        dna, f, r = (_read(d / f"{s}_{k}.TIF") for k in ("D", "F", "R"))
        nuclei, labels = _nuclei(dna, min_area=30)
        if len(nuclei) > per_site:
            keep = np.sort(np.random.default_rng(0).choice(len(nuclei), per_site, replace=False))
            nuclei = [nuclei[i] for i in keep]
        objs = _objects(labels)
        bg = float(np.median(dna[labels == 0]))
        area += [n.area for n in nuclei]
        dna_c += [M.integrated_intensity(dna[objs[n.label]], labels[objs[n.label]] == n.label, bg) for n in nuclei]
        crops.append(_cut(np.stack([dna, f, r]), [n.y for n in nuclei], [n.x for n in nuclei],
                          _window([n.area for n in nuclei]), size))
        groups += _groups(f"fly{s}", nuclei, dna.shape, 2)
    return CellSet("fly_nuclei", np.concatenate(crops), ("DNA", "OrigGreen", "OrigRed"),
                   {"nucleus_area": np.array(area, np.float32), "dna_content": np.array(dna_c, np.float32)},
                   np.array(groups), {"source": "CellProfiler ExampleFly (BSD-3)"})


def vitra_translocation(shared: Path, size: int = 64, per_well: int = 300, ring: int = 6) -> CellSet:
    """Nuclear/cytoplasmic protein ratio per cell in ExampleVitraImages (a BBBC014-type translocation assay,
    2 wells at the two ends of a dose series); the model sees DNA and the protein.

    Nuclei come from the DNA channel (:func:`chadavit.data.crops.find_nuclei`); the target is the mean protein
    intensity in the nucleus over the mean in a ``ring``-pixel cytoplasm ring around it
    (:func:`measure.nuclear_cytoplasmic_ratio`), on the full-resolution field, no background subtracted (as the
    upstream CellProfiler pipeline, after its illumination correction). A seeded ``per_well`` nuclei per well.
    """
    d = shared / CP / "ExampleVitraImages"
    wells = sorted({p.name[len("Channel 2-"):-len("-00.tif")] for p in d.glob("Channel 2-*-00.tif")})
    if not wells:
        raise RealSourceMissing(f"{d}: no 'Channel 2-*-00.tif' (DNA)")
    crops, ratio, groups = [], [], []
    for w in wells:
        dna, protein = _read(d / f"Channel 2-{w}-00.tif"), _read(d / f"Channel 1-{w}-00.tif")
        nuclei, labels = _nuclei(dna, min_area=30)
        r = M.nuclear_cytoplasmic_ratio(protein, labels, ring)
        nuclei = [n for n in nuclei if np.isfinite(r[n.label - 1])]
        if len(nuclei) > per_well:
            keep = np.sort(np.random.default_rng(0).choice(len(nuclei), per_well, replace=False))
            nuclei = [nuclei[i] for i in keep]
        ratio += [float(r[n.label - 1]) for n in nuclei]
        crops.append(_cut(np.stack([dna, protein]), [n.y for n in nuclei], [n.x for n in nuclei],
                          _window([n.area for n in nuclei], 3.0), size))
        groups += _groups(f"vitra{w}", nuclei, dna.shape, 4)
    return CellSet("vitra_translocation", np.concatenate(crops), ("DNA", "protein"),
                   {"nc_ratio": np.array(ratio, np.float32)}, np.array(groups),
                   {"source": "CellProfiler ExampleVitraImages (BSD-3)"})


BUILDERS: dict[str, Callable[[Path, int], CellSet]] = {
    "speckles_foci": speckles_foci,
    "human_mitosis": human_mitosis,
    "colocalization": colocalization,
    "dsb_nuclei": dsb_nuclei,
    "fly_nuclei": fly_nuclei,
    "vitra_translocation": vitra_translocation,
}
