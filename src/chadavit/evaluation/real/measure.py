"""Per-cell read-outs as classical image analysis (CellProfiler-style pipelines) computes them.

Each function takes plain arrays so it can be checked on a synthetic image with a known answer; the
`real` suite's tasks (:mod:`chadavit.evaluation.real.sources`) use them as targets.
"""

from __future__ import annotations

import numpy as np


def find_foci(plane: np.ndarray, mask: np.ndarray, sigma: float = 1.0, radius: int = 4, min_area: int = 3,
              rel_threshold: float = 6.0) -> np.ndarray:
    """``(K, 2)`` row/col centres of bright spots (foci) inside ``mask``, as CellProfiler's speckle pipeline
    finds them: Gaussian smoothing, white top-hat enhancement (structuring disk ``radius``), a per-object
    threshold, connected components of at least ``min_area`` pixels.

    The threshold is the larger of Otsu's on the enhanced object and ``rel_threshold`` robust standard
    deviations (MAD) above its median, so a nucleus without foci does not get its noise counted.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.morphology import disk, white_tophat

    if not mask.any():
        return np.zeros((0, 2), int)
    img = ndi.gaussian_filter(np.asarray(plane, np.float64), sigma) if sigma > 0 else np.asarray(plane, np.float64)
    enh = white_tophat(img, disk(radius))
    vals = enh[mask]
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826
    thr = med + rel_threshold * max(mad, 1e-9)
    if vals.max() > vals.min():
        thr = max(thr, float(threshold_otsu(vals)))
    comp, n = ndi.label((enh > thr) & mask)
    if n == 0:
        return np.zeros((0, 2), int)
    sizes = np.bincount(comp.ravel())[1:]
    keep = np.nonzero(sizes >= min_area)[0] + 1
    centres = ndi.center_of_mass(enh, comp, keep)
    return np.rint(np.asarray(centres, np.float64).reshape(-1, 2)).astype(int)


def count_foci(plane: np.ndarray, mask: np.ndarray, **kwargs: float) -> int:
    """Number of foci inside ``mask`` (see :func:`find_foci`)."""
    return int(len(find_foci(plane, mask, **kwargs)))


def pearson_in_mask(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two channels' pixels inside ``mask`` (CellProfiler MeasureColocalization)."""
    x = np.asarray(a, np.float64)[mask]
    y = np.asarray(b, np.float64)[mask]
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def integrated_intensity(plane: np.ndarray, mask: np.ndarray, background: float = 0.0) -> float:
    """Sum of background-subtracted intensity inside ``mask`` (DNA content when ``plane`` is a DNA stain)."""
    return float((np.asarray(plane, np.float64)[mask] - background).sum())


def mean_intensity(plane: np.ndarray, mask: np.ndarray) -> float:
    """Mean intensity inside ``mask`` (0 for an empty mask)."""
    return float(np.asarray(plane, np.float64)[mask].mean()) if mask.any() else 0.0


def nuclear_cytoplasmic_ratio(plane: np.ndarray, labels: np.ndarray, ring: int = 6) -> np.ndarray:
    """Per nucleus (labels ``1..labels.max()``): mean ``plane`` intensity in the nucleus over the mean in a
    ``ring``-pixel cytoplasm ring around it (CellProfiler's translocation read-out).

    The rings grow out of the nuclei without overlapping (each background pixel within ``ring`` pixels goes
    to the nearest nucleus, as ``expand_labels`` does), so neighbouring cells never share cytoplasm pixels.
    A nucleus whose ring is empty (or dark) gets NaN.
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import expand_labels

    img = np.asarray(plane, np.float64)
    idx = np.arange(1, int(labels.max()) + 1)
    if not len(idx):
        return np.zeros(0)
    cyto = expand_labels(labels, ring)
    cyto[labels > 0] = 0
    nuc = np.asarray(ndi.mean(img, labels, idx), np.float64)
    has = np.bincount(cyto.ravel(), minlength=len(idx) + 1)[1:] > 0
    cyt = np.asarray(ndi.mean(img, cyto, idx), np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(has & (cyt > 0), nuc / np.where(cyt > 0, cyt, 1.0), np.nan)


def positive_by_otsu(values: np.ndarray) -> np.ndarray:
    """Per-cell positive/negative call by Otsu's criterion on the per-cell values (e.g. mean PH3 per nucleus).

    Exact on the sorted values (no histogram bins): the split maximising the between-class variance, cut
    half-way between the two values either side of it.
    """
    v = np.asarray(values, np.float64)
    if v.size < 2 or v.max() <= v.min():
        return np.zeros(v.shape, bool)
    s = np.sort(v)
    k = np.arange(1, len(s))  # number of values in the lower class
    c = np.cumsum(s)[:-1]
    m_lo, m_hi = c / k, (s.sum() - c) / (len(s) - k)
    between = k * (len(s) - k) * (m_hi - m_lo) ** 2
    between[s[1:] == s[:-1]] = -1.0  # never split between equal values
    i = int(np.argmax(between))
    return v > (s[i] + s[i + 1]) / 2


def spatial_block(y: float, x: float, height: int, width: int, blocks: int) -> int:
    """Index of the ``blocks x blocks`` spatial block of a field that point ``(y, x)`` falls in.

    Cells of one block form one split group, so neighbouring (overlapping) crops never straddle the split.
    """
    by = min(blocks - 1, int(y * blocks / max(1, height)))
    bx = min(blocks - 1, int(x * blocks / max(1, width)))
    return by * blocks + bx
