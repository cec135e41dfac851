"""Per-cell read-outs as classical image analysis (CellProfiler-style pipelines) computes them.

Each function takes plain arrays so it can be checked on a synthetic image with a known answer; the
`real` suite's tasks (:mod:`chadavit.evaluation.real.sources`) use them as targets.
"""

from __future__ import annotations

import numpy as np


def find_foci(plane: np.ndarray, mask: np.ndarray, sigma: float = 1.0, min_distance: int = 2,
              rel_threshold: float = 3.0) -> np.ndarray:
    """``(K, 2)`` row/col positions of bright spots (foci) inside ``mask``: local maxima of a Laplacian-of-
    Gaussian response.

    A maximum counts when its response exceeds ``rel_threshold`` robust standard deviations (MAD) above the
    median response inside the mask, as CellProfiler's "speckles" enhancement + per-object threshold does;
    the threshold is per object, so a dim and a bright nucleus with the same foci count the same.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    if not mask.any():
        return np.zeros((0, 2), int)
    img = np.asarray(plane, np.float64)
    resp = -ndi.gaussian_laplace(img, sigma)
    vals = resp[mask]
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826
    # a flat, noisy object has only its noise as MAD: require some absolute contrast as well
    floor = 0.02 * float(img[mask].max() - img[mask].min())
    thr = med + rel_threshold * max(mad, floor, 1e-9)
    return peak_local_max(np.where(mask, resp, resp.min()), min_distance=min_distance, threshold_abs=thr,
                          exclude_border=False)


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


def positive_by_otsu(values: np.ndarray) -> np.ndarray:
    """Per-cell positive/negative call by Otsu's threshold on the per-cell values (e.g. mean PH3 per nucleus)."""
    from skimage.filters import threshold_otsu

    v = np.asarray(values, np.float64)
    if v.size == 0 or v.max() <= v.min():
        return np.zeros(v.shape, bool)
    return v > threshold_otsu(v)


def spatial_block(y: float, x: float, height: int, width: int, blocks: int) -> int:
    """Index of the ``blocks x blocks`` spatial block of a field that point ``(y, x)`` falls in.

    Cells of one block form one split group, so neighbouring (overlapping) crops never straddle the split.
    """
    by = min(blocks - 1, int(y * blocks / max(1, height)))
    bx = min(blocks - 1, int(x * blocks / max(1, width)))
    return by * blocks + bx
