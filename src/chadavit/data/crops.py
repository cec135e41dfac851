"""Cutting fields of view into model-sized crops: a regular grid, or windows centred on nuclei.

Boxes are ``(y0, x0, y1, x1)`` in the pixel coordinates of the original field (``y1``/``x1``
exclusive). A box may reach past the image border (small images, nuclei near the edge); the part
outside is filled with zeros, i.e. background after normalisation. Boxes are written to the output
so every feature row can be traced back to its pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Crop:
    """One window of a field plus what it was centred on (nucleus crops)."""

    y0: int
    x0: int
    y1: int
    x1: int
    meta: tuple[tuple[str, Any], ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def _starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [(length - size) // 2]  # centred, padded on both sides
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)  # last tile flush with the border so the whole field is covered
    return starts


def grid_crops(height: int, width: int, size: int, stride: int | None = None) -> list[Crop]:
    """Tiles of ``size`` every ``stride`` pixels (default: no overlap) that cover the whole field."""
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    stride = stride or size
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    return [Crop(y, x, y + size, x + size) for y in _starts(height, size, stride) for x in _starts(width, size, stride)]


def full_crop(height: int, width: int) -> list[Crop]:
    """The whole field as one crop (resized to the model input size later)."""
    return [Crop(0, 0, height, width)]


@dataclass(frozen=True)
class Nucleus:
    y: float
    x: float
    area: int
    label: int


NUCLEUS_CHANNEL_GUESSES = ("DNA", "DAPI", "Hoechst", "Nuclei", "nucleus", "H2B")


def guess_nucleus_channel(names: Sequence[str]) -> int | None:
    """Index of the first channel named like a nuclear stain (in the order above, any case), or None."""
    low = [n.lower() for n in names]
    for guess in NUCLEUS_CHANNEL_GUESSES:
        if guess.lower() in low:
            return low.index(guess.lower())
    return None


def find_nuclei(plane: np.ndarray, min_area: int = 30, sigma: float = 1.0, min_distance: int | None = None
                ) -> tuple[list[Nucleus], np.ndarray]:
    """Segment nuclei in a DNA plane: Gaussian smoothing, Otsu threshold, distance-transform watershed.

    Returns the nuclei (centroid, area, label) and the label image. ``min_distance`` (pixels between
    seeds) defaults to half the median radius of the thresholded objects, which splits touching
    nuclei without cutting single ones.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import regionprops
    from skimage.segmentation import watershed

    img = gaussian(np.asarray(plane, dtype=np.float32), sigma=sigma, preserve_range=True) if sigma > 0 else plane
    if float(img.max()) <= float(img.min()):
        return [], np.zeros(img.shape, np.int32)
    mask = img > threshold_otsu(img)
    mask = ndi.binary_fill_holes(ndi.binary_opening(mask, iterations=1))
    comp, n = ndi.label(mask)
    if n == 0:
        return [], np.zeros(img.shape, np.int32)
    sizes = np.bincount(comp.ravel())
    keep = sizes >= min_area
    keep[0] = False
    mask = keep[comp]
    if not mask.any():
        return [], np.zeros(img.shape, np.int32)
    comp, n = ndi.label(mask)
    dist = ndi.distance_transform_edt(mask)
    if min_distance is None:
        radius = math.sqrt(float(np.median(np.bincount(comp.ravel())[1:])) / math.pi)
        min_distance = max(3, int(round(radius * 0.5)))
    smooth = ndi.gaussian_filter(dist, 1.0)
    peaks = peak_local_max(smooth, min_distance=min_distance, labels=comp, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # components without a peak (tiny or flat) still get one seed
    unseeded = np.setdiff1d(np.unique(comp[mask]), np.unique(comp[markers > 0]))
    for k, lab in enumerate(unseeded, start=len(peaks) + 1):
        ys, xs = np.nonzero(comp == lab)
        i = int(np.argmax(dist[ys, xs]))
        markers[ys[i], xs[i]] = k
    labels = watershed(-smooth, markers, mask=mask).astype(np.int32)
    nuclei = [Nucleus(float(p.centroid[0]), float(p.centroid[1]), int(p.area), int(p.label))
              for p in regionprops(labels) if p.area >= min_area]
    return nuclei, labels


def nucleus_crops(plane: np.ndarray, size: int, min_area: int = 30, max_crops: int | None = None,
                  found: list[Nucleus] | None = None) -> list[Crop]:
    """Windows of ``size`` centred on each nucleus found in ``plane`` (see :func:`find_nuclei`), or on the
    nuclei ``found`` already (the caller also needs their label image)."""
    nuclei = found if found is not None else find_nuclei(plane, min_area=min_area)[0]
    if max_crops is not None and len(nuclei) > max_crops:
        idx = np.unique(np.linspace(0, len(nuclei) - 1, max_crops).round().astype(int))
        nuclei = [nuclei[i] for i in idx]
    out = []
    for nuc in nuclei:
        y0 = int(round(nuc.y)) - size // 2
        x0 = int(round(nuc.x)) - size // 2
        meta = (("NucleusY", round(nuc.y, 2)), ("NucleusX", round(nuc.x, 2)), ("NucleusArea", nuc.area),
                ("NucleusLabel", nuc.label))
        out.append(Crop(y0, x0, y0 + size, x0 + size, meta))
    return out


def extract(field: np.ndarray, crop: Crop) -> np.ndarray:
    """The pixels of ``crop`` from a ``(C, H, W)`` field, zero-filled where it leaves the image."""
    c, h, w = field.shape
    if crop.y0 >= 0 and crop.x0 >= 0 and crop.y1 <= h and crop.x1 <= w:
        return field[:, crop.y0 : crop.y1, crop.x0 : crop.x1]
    out = np.zeros((c, crop.y1 - crop.y0, crop.x1 - crop.x0), dtype=field.dtype)
    ys, ye = max(crop.y0, 0), min(crop.y1, h)
    xs, xe = max(crop.x0, 0), min(crop.x1, w)
    if ys < ye and xs < xe:
        out[:, ys - crop.y0 : ye - crop.y0, xs - crop.x0 : xe - crop.x0] = field[:, ys:ye, xs:xe]
    return out
