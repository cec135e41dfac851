"""The old hand-written "CellProfiler-style" per-cell statistics (``handcrafted``, kept for comparison; the
baseline in reports is now ``cellprofiler``, :mod:`chadavit.models.references.cellprofiler`), and per-crop
standardised raw pixels (``raw_pixels``, the user-facing pixel baseline).

Both are reference encoders (:mod:`chadavit.models.references.base`): one vector per crop as ``cls``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chadavit.measure.cellprofiler import to_unit as _unit
from chadavit.measure.objects import central_object
from chadavit.models.references.base import ReferenceEncoder

GLCM_PROPS = ("contrast", "correlation", "energy", "homogeneity")


def _convex_area(mask: np.ndarray) -> float:
    """Area of the convex hull of the mask's pixel squares (qhull; far faster than a rasterised hull)."""
    from scipy import ndimage as ndi
    from scipy.spatial import ConvexHull, QhullError

    ys, xs = np.nonzero(mask & ~ndi.binary_erosion(mask))  # the hull of the boundary pixels is the same hull
    corners = np.concatenate([np.stack([ys + dy, xs + dx], 1) for dy in (0, 1) for dx in (0, 1)]).astype(float)
    try:
        return float(ConvexHull(corners).volume)
    except (QhullError, ValueError):
        return float(mask.sum())


def shape_features(mask: np.ndarray) -> list[float]:
    """MeasureObjectSizeShape: area, perimeter, form factor, eccentricity, solidity, extent, axes, diameter."""
    from skimage.measure import regionprops

    props = regionprops(mask.astype(np.uint8))
    if not props:
        return [0.0] * 9
    p = props[0]
    per = float(p.perimeter) or 1.0
    area = float(p.area)
    return [area, per, 4 * np.pi * area / per**2, float(p.eccentricity), area / max(_convex_area(mask), 1.0),
            float(p.extent), float(p.axis_major_length), float(p.axis_minor_length), float(p.equivalent_diameter_area)]


def intensity_features(plane: np.ndarray, mask: np.ndarray) -> list[float]:
    """MeasureObjectIntensity (+ the crop's): integrated, mean, std, min, max, quartiles; mean outside the mask."""
    inside = plane[mask] if mask.any() else plane.ravel()
    outside = plane[~mask] if (~mask).any() else np.zeros(1)
    q = np.percentile(inside, (10, 25, 50, 75, 90))
    return [float(inside.sum()), float(inside.mean()), float(inside.std()), float(inside.min()), float(inside.max()),
            *map(float, q), float(outside.mean()), float(plane.mean()), float(plane.std())]


def texture_features(plane: np.ndarray, levels: int = 16) -> list[float]:
    """MeasureTexture (Haralick): GLCM contrast, correlation, energy, homogeneity at distances 1 and 3,
    averaged over 4 angles, on the crop rescaled to ``levels`` grey levels."""
    from skimage.feature import graycomatrix, graycoprops

    lo, hi = float(plane.min()), float(plane.max())
    q = np.zeros(plane.shape, np.uint8) if hi <= lo else \
        np.minimum((plane - lo) / (hi - lo) * levels, levels - 1).astype(np.uint8)
    glcm = graycomatrix(q, [1, 3], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels, symmetric=True,
                        normed=True)
    return [float(np.nan_to_num(graycoprops(glcm, prop)[i].mean())) for prop in GLCM_PROPS for i in range(2)]


def moment_features(plane: np.ndarray) -> list[float]:
    """The 7 Hu moments of the intensity image (log-scaled), CellProfiler's Zernike/moment stand-in."""
    from skimage.measure import moments_central, moments_hu, moments_normalized

    if plane.max() <= 0:
        return [0.0] * 7
    hu = moments_hu(moments_normalized(moments_central(plane, order=3), order=3))
    return [float(-np.sign(h) * np.log10(abs(h) + 1e-12)) for h in hu]


def channel_features(plane: np.ndarray) -> list[float]:
    """One channel on 0-1: the central object's shape, intensity inside and around it, texture and moments."""
    mask = central_object(plane)
    return shape_features(mask) + intensity_features(plane, mask) + texture_features(plane) + moment_features(plane)


def handcrafted_vector(img: np.ndarray, memo: dict[bytes, list[float]] | None = None) -> np.ndarray:
    """One crop ``(C, H, W)`` -> per channel :func:`channel_features` (37 numbers per channel).

    ``memo`` (plane digest -> features) lets channel subsets of the same crops, and zero planes, reuse work.
    """
    import hashlib

    feats: list[float] = []
    for raw in img:
        key = hashlib.sha1(np.ascontiguousarray(raw).tobytes() + raw.dtype.str.encode()).digest()
        if memo is not None and key in memo:
            feats += memo[key]
            continue
        f = channel_features(_unit(raw[None])[0])
        if memo is not None:
            memo[key] = f
        feats += f
    return np.nan_to_num(np.asarray(feats, np.float64), posinf=0.0, neginf=0.0)


def raw_pixel_vector(img: np.ndarray, size: int = 32) -> np.ndarray:
    """Per-crop, per-channel standardised pixels, area-averaged to at most ``size x size``."""
    a = np.asarray(img, np.float64)
    c, h, w = a.shape
    f = max(1, max(h, w) // size)
    if f > 1:
        a = a[:, : h // f * f, : w // f * f].reshape(c, h // f, f, w // f, f).mean((2, 4))
    mu = a.mean((1, 2), keepdims=True)
    sd = a.std((1, 2), keepdims=True)
    return ((a - mu) / np.where(sd > 1e-12, sd, 1.0)).ravel()


class HandcraftedEncoder(ReferenceEncoder):
    """CellProfiler-style per-cell features (per channel: object shape, intensity, GLCM texture, Hu moments)."""

    kind = "handcrafted"
    physical_units = True

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[bytes, list[float]] = {}  # per-plane features: channel subsets reuse them

    def vectors(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
        if len(self._memo) > 200_000:
            self._memo.clear()
        return np.stack([handcrafted_vector(im, self._memo) for im in images]).astype(np.float32)


class RawPixelEncoder(ReferenceEncoder):
    """Per-crop standardised raw pixels (at most 32 x 32 per channel), read out by ridge / linear probe."""

    kind = "raw_pixels"

    def vectors(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
        return np.stack([raw_pixel_vector(im) for im in images]).astype(np.float32)
