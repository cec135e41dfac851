"""Objects to measure, CellProfiler style: nuclei (primary), cells grown from them, cytoplasm = cell - nucleus.

Label ``k`` is the same cell in every label image of one :class:`Objects`, so a nucleus, its cell and its
cytoplasm are one row of measurements. Nuclei come from :func:`find_nuclei` (the segmentation of
``chadavit embed --crops nuclei``); cells grown from the nuclei over a named cell-body or
cytoplasm channel (the "Propagation" method of CellProfiler's IdentifySecondaryObjects, :func:`propagate_cells`);
without such a channel only nuclei are measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chadavit.data.crops import find_nuclei, guess_nucleus_channel  # moves to chadavit.data.crops
from chadavit.errors import ChadavitError

# channels that outline the whole cell body (first match wins, any case)
CELL_CHANNEL_GUESSES = ("CellBody", "Cytoplasm", "CellMask", "Actin", "Phalloidin", "AGP", "WGA", "Membrane",
                        "Tubulin", "RNA", "ER", "Mito")


class NoNuclearStainError(ChadavitError, ValueError):
    """Nuclei were asked for but no channel is (or was named as) a nuclear stain."""


class NoObjectError(ChadavitError, ValueError):
    """A crop in which no object was found (flat, or nothing above Otsu's threshold)."""


@dataclass
class Objects:
    """Label images of one field or crop; ``primary`` names the primary objects ("Nuclei", or "Cells" when
    the primary objects are whole cells of a channel that is not a nuclear stain)."""

    primary_labels: np.ndarray
    cells: np.ndarray | None = None
    primary: str = "Nuclei"

    @property
    def cytoplasm(self) -> np.ndarray | None:
        if self.cells is None:
            return None
        return np.where(self.primary_labels > 0, 0, self.cells).astype(np.int32)

    def named(self, image: bool = False, background: bool = False) -> dict[str, np.ndarray]:
        """``{"Nuclei": ..., "Cells": ..., "Cytoplasm": ...}`` (the object sets that exist); with ``image``, also
        ``"Image"``: the whole crop as object 1 (image-level measurements of a single-cell crop); with
        ``background`` too, ``"Background"``: the crop's pixels outside every object, as object 1 (a background
        estimate, ours)."""
        out = {self.primary: self.primary_labels}
        if self.cells is not None:
            out["Cells"] = self.cells
            out["Cytoplasm"] = self.cytoplasm  # type: ignore[assignment]
        if image:
            out["Image"] = np.ones(self.primary_labels.shape, np.int32)
        if image and background:
            inside = (self.primary_labels > 0) | (self.cells > 0 if self.cells is not None else False)
            out["Background"] = (~inside).astype(np.int32)
        return out


def _index(names: Sequence[str], want: str | int | None) -> int | None:
    if want is None or isinstance(want, int):
        return want
    low = [n.lower() for n in names]
    if want.lower() not in low:
        raise NoNuclearStainError(f"channel {want!r} is not among the channels {list(names)}")
    return low.index(want.lower())


def guess_cell_channel(names: Sequence[str], exclude: int | None = None) -> int | None:
    """Index of the first channel named like a cell-body stain (:data:`CELL_CHANNEL_GUESSES`), or None."""
    low = [n.lower() for n in names]
    for guess in CELL_CHANNEL_GUESSES:
        if guess.lower() in low and low.index(guess.lower()) != exclude:
            return low.index(guess.lower())
    return None


REGULARIZATION = 0.05  # CellProfiler's IdentifySecondaryObjects default (Propagation)
MAX_DISTANCE_RADII = 4.0  # cap: a cell reaches at most this many median nucleus radii past its nucleus


def cell_foreground(plane: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed plane and its foreground: above the minimum cross-entropy (Li) threshold, the default
    threshold of CellProfiler's IdentifySecondaryObjects. (Otsu's threshold, used before, put dim cells of
    ExampleHuman's cell-body stain in the background: 136 of 317 cells had no cytoplasm.)"""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_li

    sm = ndi.gaussian_filter(np.asarray(plane, np.float64), sigma) if sigma > 0 else np.asarray(plane, np.float64)
    if not sm.max() > sm.min():
        return sm, np.zeros(sm.shape, bool)
    return sm, sm > threshold_li(sm)


def propagate_cells(seeds: np.ndarray, plane: np.ndarray, sigma: float = 1.0,
                    max_distance: float | None = None) -> np.ndarray:
    """Cells grown from labelled ``seeds`` (nuclei) over the foreground of a cell-body ``plane``.

    CellProfiler's IdentifySecondaryObjects "Propagation" (Jones et al. 2005, centrosome's ``propagate``, the
    code CellProfiler runs): each foreground pixel goes to the seed nearest in a distance that adds intensity
    changes along the path (regularisation 0.05), so touching cells split along dim boundaries and a dim cell
    keeps its own cytoplasm. Foreground: :func:`cell_foreground`, plus the seeds, and no further than
    ``max_distance`` pixels from a nucleus (default :data:`MAX_DISTANCE_RADII` median nucleus radii, so a
    low threshold cannot grow cells over the whole background). Foreground without a nucleus stays
    background (as in CellProfiler). Every seed's own pixels stay in its cell.
    """
    import centrosome.propagate
    from scipy import ndimage as ndi

    seeds = np.asarray(seeds).astype(np.int32)
    sm, fg = cell_foreground(plane, sigma)
    inside = seeds > 0
    if not inside.any():
        return np.zeros(seeds.shape, np.int32)
    if max_distance is None:
        areas = np.bincount(seeds.ravel())[1:]
        max_distance = MAX_DISTANCE_RADII * max(1.0, float(np.sqrt(np.median(areas[areas > 0]) / np.pi)))
    fg = (fg & (ndi.distance_transform_edt(~inside) <= max_distance)) | inside
    cells, _ = centrosome.propagate.propagate(sm, seeds, fg, REGULARIZATION)
    cells = np.where(fg, cells, 0).astype(np.int32)
    cells[inside] = seeds[inside]
    return cells


def segment_field(image: np.ndarray, names: Sequence[str], nucleus_channel: str | int | None = None,
                  cell_channel: str | int | None = None, min_area: int = 30) -> Objects:
    """Nuclei (and cells, where a cell-body channel is named or guessed) of a ``(C, H, W)`` field.

    The nuclear stain is ``nucleus_channel``, else the channel named like one, else the only channel.
    Several channels and none a nuclear stain: :class:`NoNuclearStainError` (the caller reports it; there is
    nothing to measure per cell without objects).
    """
    k = _index(names, nucleus_channel)
    if k is None:
        k = guess_nucleus_channel(names)
    if k is None and len(names) == 1:
        k = 0
    if k is None:
        raise NoNuclearStainError(f"no nuclear stain among the channels {list(names)}; name the channel that "
                                  "shows the nuclei (--nuclei-channel)")
    _, nuclei = find_nuclei(image[k], min_area=min_area)
    c = _index(names, cell_channel)
    if c is None:
        c = guess_cell_channel(names, exclude=k)
    cells = propagate_cells(nuclei, image[c]) if c is not None and c != k else None
    return Objects(nuclei, cells)


# ---------------------------------------------------------------------------------------------- single-cell crops
def _nearest_label(labels: np.ndarray) -> int:
    cy, cx = (np.array(labels.shape) - 1) / 2
    ys, xs = np.nonzero(labels)
    return int(labels[ys, xs][np.argmin((ys - cy) ** 2 + (xs - cx) ** 2)])


def central_object(plane: np.ndarray, whole_if_none: bool = True) -> np.ndarray:
    """The object under the crop centre in one channel: smoothed Otsu threshold, holes filled, the component
    nearest the centre, split from touching neighbours by a distance-transform watershed (as
    :func:`chadavit.data.crops.find_nuclei`, on that one component only); the whole crop when nothing is found,
    or :class:`NoObjectError` when not ``whole_if_none``."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    sm = ndi.gaussian_filter(np.asarray(plane, np.float64), 1.0)
    n = 0
    if sm.max() > sm.min():
        comp, n = ndi.label(ndi.binary_fill_holes(sm > threshold_otsu(sm)))
    if n == 0:
        if not whole_if_none:
            raise NoObjectError("no object in the crop (flat, or nothing above Otsu's threshold)")
        return np.ones(plane.shape, bool)
    obj = comp == _nearest_label(comp)
    dist = ndi.gaussian_filter(ndi.distance_transform_edt(obj), 1.0)
    radius = float(np.sqrt(obj.sum() / np.pi))
    md = max(3, int(round(radius * 0.5)))
    # seeds: plateaus of local maxima of the smoothed distance map (peak_local_max without its slow spacing pass)
    seeds, n_seeds = ndi.label((dist == ndi.maximum_filter(dist, size=2 * md + 1)) & (dist > 2.0))
    if n_seeds < 2:
        return obj
    split = watershed(-dist, seeds, mask=obj)
    return split == _nearest_label(split)


def crop_objects(crop: np.ndarray, names: Sequence[str], nucleus_channel: str | int | None = None,
                 cell_channel: str | int | None = None, whole_if_none: bool = True) -> Objects:
    """The cell of a single-cell crop ``(C, H, W)``, as label 1: the object nearest the crop centre.

    Its nucleus is :func:`central_object` of the nuclear stain; its cell is grown from it over the cell-body
    channel, with the crop's other nuclei as competing seeds. Without a nuclear stain (documented choice) the
    primary object is the central object of the first channel, named ``Cells``. Nothing found: the whole crop
    (the evaluation's rule), or :class:`NoObjectError` when not ``whole_if_none`` (embed: an error row).
    """
    k = _index(names, nucleus_channel)
    if k is None:
        k = guess_nucleus_channel(names)
    if k is None:
        return Objects(central_object(crop[0], whole_if_none).astype(np.int32), primary="Cells")
    nucleus = central_object(crop[k], whole_if_none)
    c = _index(names, cell_channel)
    if c is None:
        c = guess_cell_channel(names, exclude=k)
    if c is None or c == k:
        return Objects(nucleus.astype(np.int32))
    _, others = find_nuclei(crop[k], min_area=10)
    seeds = np.where(nucleus, 1, np.where(others > 0, others + 1, 0)).astype(np.int32)
    cells = (propagate_cells(seeds, crop[c]) == 1).astype(np.int32)
    return Objects(nucleus.astype(np.int32), cells)
