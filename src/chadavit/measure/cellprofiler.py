"""CellProfiler measurements per object from cp_measure, named as CellProfiler names them.

Column names: ``cp_<Object>_<Measurement>_<Channel>[_<suffix>]``, e.g. ``cp_Nuclei_Intensity_MeanIntensity_DNA``,
``cp_Cells_AreaShape_Area``, ``cp_Cytoplasm_Texture_Contrast_Actin_3_00_16``, ``cp_Nuclei_Granularity_2_DNA``,
``cp_Cells_RadialDistribution_FracAtD_DNA_1of4``, ``cp_Cells_Correlation_Correlation_DNA_Actin`` (Pearson);
what cp_measure lacks is ours: speckle children per parent (family ``speckles``,
``cp_Nuclei_Children_gH2AXSpeckles_Count``, :mod:`chadavit.measure.children`) and, on crops, the ``Image`` and
``Background`` object sets (:data:`CROP_FAMILIES`).

Choices (documented in docs/embed.md):

- images are measured on 0-1 by their dtype's range, as CellProfiler loads them (floats as given);
- texture uses 16 grey levels (CellProfiler 4's default is 256: about 100x slower here, 7.7 s vs 0.07 s for 36
  objects of a 256-px field), on each channel stretched to its own 0-1 range first (CellProfiler's
  RescaleIntensity "stretch"): 12-bit data in 16-bit files would otherwise fall into grey level 0, where
  texture is undefined; Costes colocalisation is left out (its threshold search dominates the cost);
- position features (``Location_*``, ``AreaShape_Center_*``, bounding-box corners, spatial moments) and the
  always-undefined normalised moments 0_0, 0_1, 1_0 are dropped: they say where a cell is, not what it is;
- objects smaller than ``min_area`` pixels are not measured (a 1-pixel object has no shape or texture): their
  columns are NaN and the reason is returned, never zeros. Values that CellProfiler itself leaves undefined
  for an object (e.g. texture of a 2-pixel line) stay NaN.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from chadavit.errors import ChadavitError
from chadavit.measure.children import Speckles, children_measurements, speckles_of
from chadavit.measure.granularity import granularity_sets, upsample_operators
from chadavit.measure.radial import RadialGeometry, ZernikeBasis
from chadavit.measure.texture import texture

DEFAULT_FAMILIES = ("intensity", "sizeshape", "zernike", "feret", "texture", "granularity", "radial_distribution",
                    "radial_zernikes", "pearson", "manders_fold", "rwc", "speckles")
SHAPE_FAMILIES = ("sizeshape", "zernike", "feret")
PAIR_FAMILIES = ("pearson", "manders_fold", "rwc")
# the whole image (a single-cell crop) as one object "Image": CellProfiler's image-level modules
# (MeasureImageIntensity, MeasureTexture and MeasureGranularity on images); cp_measure has only the per-object
# forms, so the crop is measured as one object; names follow CellProfiler's Image_ columns
IMAGE_OBJECT = "Image"
IMAGE_FAMILIES = ("intensity", "texture", "granularity")
# the crop's pixels outside every segmented object as one object "Background" (ours: CellProfiler users get it
# with MaskImage + MeasureImageIntensity): a background estimate per channel beside each object's intensity
BACKGROUND_OBJECT = "Background"
CROP_FAMILIES = {IMAGE_OBJECT: IMAGE_FAMILIES, BACKGROUND_OBJECT: ("intensity",)}
PARAMS: dict[str, dict[str, object]] = {"texture": {"gray_levels": 16}}
MIN_OBJECT_AREA = 4
_DROP = re.compile(r"^(Location_|Center_|BoundingBoxM(in|ax)imum_|SpatialMoment_|NormalizedMoment_(0_0|0_1|1_0)$)")
_PAIR_NAMES = {"Correlation_Pearson": ("Correlation_Correlation", False),
               "Correlation_Slope": ("Correlation_Slope", False),
               "Correlation_Manders_1": ("Correlation_Manders", False),
               "Correlation_Manders_2": ("Correlation_Manders", True),
               "Correlation_RWC_1": ("Correlation_RWC", False), "Correlation_RWC_2": ("Correlation_RWC", True)}


class MeasureError(ChadavitError, ValueError):
    """Measurements cannot be made (unknown family, image and labels of different shapes); the message says why."""


def to_unit(img: np.ndarray) -> np.ndarray:
    """Intensities on 0-1 by the dtype's range (integers) as CellProfiler loads them; floats unchanged."""
    a = np.asarray(img)
    if a.dtype.kind in "ui":
        return a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    return a.astype(np.float64)


def cp_name(obj: str, family: str, key: str, channel: str | None = None, pair: tuple[str, str] | None = None) -> str:
    """CellProfiler's name for a cp_measure key, with the ``cp_`` prefix."""
    if family in SHAPE_FAMILIES:
        return f"cp_{obj}_AreaShape_{key}"
    if family in PAIR_FAMILIES:
        assert pair is not None
        base, flip = _PAIR_NAMES[key]
        a, b = pair[::-1] if flip else pair
        return f"cp_{obj}_{base}_{a}_{b}"
    if family == "texture":  # Contrast_3_00_16 -> Texture_Contrast_<ch>_3_00_16
        name, rest = key.split("_", 1)
        return f"cp_{obj}_Texture_{name}_{channel}_{rest}"
    if family == "granularity":  # Granularity_3 -> Granularity_3_<ch>
        return f"cp_{obj}_{key}_{channel}"
    if family.startswith("radial"):  # RadialDistribution_FracAtD_1of4 -> RadialDistribution_FracAtD_<ch>_1of4
        head, meas, rest = key.split("_", 2)
        return f"cp_{obj}_{head}_{meas}_{channel}_{rest}"
    return f"cp_{obj}_{key}_{channel}"  # Intensity_MeanIntensity -> Intensity_MeanIntensity_<ch>


@lru_cache(maxsize=100_000)
def _column(obj: str, family: str, key: str, channel: str | None, pair: tuple[str, str] | None) -> str | None:
    """The column of a cp_measure key (None: a dropped position feature); cached, as every crop repeats them."""
    if family not in PAIR_FAMILIES and _DROP.match(key.removeprefix("AreaShape_")):
        return None
    if obj == BACKGROUND_OBJECT and ("Edge" in key or "MassDisplacement" in key):
        return None  # MeasureImageIntensity's set: a region's edge and centre of mass say nothing of background
    return cp_name(obj, family, key, channel, pair)


@lru_cache(maxsize=1)
def _functions() -> dict[str, object]:
    from cp_measure.bulk import get_core_measurements, get_correlation_measurements

    corr = get_correlation_measurements(sanitize=False)
    return {**get_core_measurements(sanitize=False), "pearson": corr["pearson"],
            "manders_fold": corr["manders_fold"], "rwc": corr["rwc"]}


def _clean(labels: np.ndarray, obj: str, min_area: int, reasons: dict[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``1..N`` of the objects big enough to measure, and the original id of each; notes the others."""
    from cp_measure._sanitize import sanitize_masks

    lab = np.asarray(labels).astype(np.int32, copy=True)
    sizes = np.bincount(lab.ravel())
    for k in np.nonzero((sizes > 0) & (sizes < min_area))[0]:
        if k > 0:
            reasons.setdefault(int(k), f"{obj} object {int(k)} has {int(sizes[k])} pixel(s), fewer than {min_area}: "
                                       "too small to measure")
            lab[lab == k] = 0
    clean, ids = sanitize_masks(lab)
    return np.asarray(clean, np.int32), ids


def stretch(image: np.ndarray) -> np.ndarray:
    """Each channel of ``(C, H, W)`` rescaled to its own 0-1 range (flat channels become 0)."""
    lo = image.min(axis=(1, 2), keepdims=True)
    span = image.max(axis=(1, 2), keepdims=True) - lo
    return (image - lo) / np.where(span > 0, span, 1.0)


def _measure_one(obj: str, labels: np.ndarray, image: np.ndarray, names: Sequence[str],
                 families: Sequence[str], stretched: np.ndarray | None = None,
                 granularity: Sequence[dict[str, np.ndarray]] | None = None,
                 speckles: Sequence[Speckles] | None = None) -> dict[str, np.ndarray]:
    """The ``cp_`` columns of one object set (labels ``1..N``); ``granularity``: its spectra per channel when
    they were computed with the other object sets' (:func:`granularity_sets`); ``speckles``: each channel's
    child objects, identified once for all object sets (:mod:`chadavit.measure.children`)."""
    fns = _functions()
    if obj in CROP_FAMILIES:
        families = [f for f in families if f in CROP_FAMILIES[obj]]
    if "texture" in families and stretched is None:
        stretched = stretch(image)
    out: dict[str, np.ndarray] = {}

    def add(family: str, res: dict[str, np.ndarray], **kw: object) -> None:
        for key, v in res.items():
            name = _column(obj, family, key, kw.get("channel"), kw.get("pair"))  # type: ignore[arg-type]
            if name is not None:
                out[name] = np.asarray(v, np.float64)

    geometry: dict[str, object] = {}  # label-only work, shared by the channels (measure/radial.py)

    def shared(kind: type) -> object:
        if kind.__name__ not in geometry:
            geometry[kind.__name__] = kind.of(labels)
        return geometry[kind.__name__]

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for fam in families:
            fn = fns.get(fam)
            if fam == "zernike":
                add(fam, shared(ZernikeBasis).shape())  # type: ignore[attr-defined]
            elif fam in ("radial_distribution", "radial_zernikes"):
                for c, ch in enumerate(names):
                    res = (shared(RadialGeometry).measure(image[c]) if fam == "radial_distribution"  # type: ignore[attr-defined]
                           else shared(ZernikeBasis).intensity(image[c]))  # type: ignore[attr-defined]
                    add(fam, res, channel=ch)
            elif fam == "texture":
                for c, ch in enumerate(names):
                    add(fam, texture(labels, stretched[c], **PARAMS[fam]), channel=ch)  # type: ignore[index,arg-type]
            elif fam == "granularity":
                for c, ch in enumerate(names):
                    add(fam, granularity[c] if granularity is not None else granularity_sets(image[c], [labels])[0],
                        channel=ch)
            elif fam == "speckles":
                out.update(children_measurements(obj, labels, names, speckles if speckles is not None
                                                 else speckles_of(image, labels > 0)))
            elif fam in SHAPE_FAMILIES:
                add(fam, fn(labels, None, **PARAMS.get(fam, {})))  # type: ignore[operator]
            elif fam in PAIR_FAMILIES:
                for i in range(len(names)):
                    for j in range(i + 1, len(names)):
                        add(fam, fn(image[i], image[j], labels), pair=(names[i], names[j]))  # type: ignore[operator]
            else:
                pixels = stretched if fam == "texture" else image
                for c, ch in enumerate(names):
                    add(fam, fn(labels, pixels[c], **PARAMS.get(fam, {})), channel=ch)  # type: ignore[index,operator]
    return out


def measure_objects(image: np.ndarray, names: Sequence[str], objects: dict[str, np.ndarray],
                    families: Sequence[str] = DEFAULT_FAMILIES, min_area: int = MIN_OBJECT_AREA
                    ) -> tuple[pd.DataFrame, dict[int, str]]:
    """Measure every object of every label image in ``objects`` (name -> ``(H, W)`` labels) on ``image``.

    ``image`` is ``(C, H, W)`` on 0-1 (see :func:`to_unit`), ``names`` its channels. Label ``k`` is the same cell
    in every label image. Returns one row per label of the first (primary) label image, indexed by label, with
    ``cp_`` columns, and ``{label: reason}`` for cells with an object that could not be measured (its columns
    NaN). Object sets named ``Image`` and ``Background`` get their families only (:data:`CROP_FAMILIES`); an
    empty ``Background`` (the object fills the crop) leaves its columns NaN without a reason (the cell was
    measured). Speckles (children) are identified once per channel inside the union of the other sets' objects.
    """
    unknown = [f for f in families if f not in DEFAULT_FAMILIES]
    if unknown:
        raise MeasureError(f"unknown measurement families {unknown}; known: {', '.join(DEFAULT_FAMILIES)}")
    image = np.asarray(image, np.float64)
    if image.ndim != 3 or image.shape[0] != len(names):
        raise MeasureError(f"image of shape {image.shape} does not match its {len(names)} channel names")
    primary = next(iter(objects.values()))
    all_ids = np.unique(primary[primary > 0]).astype(np.int64)
    reasons: dict[int, str] = {}
    cols: dict[str, np.ndarray] = {}
    stretched = stretch(image)
    cleaned = {}
    for obj, labels in objects.items():
        if labels.shape != image.shape[1:]:
            raise MeasureError(f"{obj} labels of shape {labels.shape} do not match the image {image.shape[1:]}")
        cleaned[obj] = _clean(labels, obj, min_area, reasons if obj not in CROP_FAMILIES else {})
    gran = _shared_granularity(image, cleaned, families)
    cells = [clean > 0 for o, (clean, _) in cleaned.items() if o not in CROP_FAMILIES]
    speckles = speckles_of(image, np.logical_or.reduce(cells)) if "speckles" in families and cells else None
    for obj, (clean, ids) in cleaned.items():
        missing = np.setdiff1d(all_ids, ids) if obj not in CROP_FAMILIES else []
        for k in missing:
            reasons.setdefault(int(k), f"{obj}: no pixels left for cell {int(k)}" + (
                " (the cell is all nucleus)" if obj == "Cytoplasm" else ""))
        if ids.size == 0:
            template = _template_columns(tuple(names), obj, tuple(families))
            cols.update({c: np.full(len(all_ids), np.nan) for c in template})
            continue
        pos = np.searchsorted(all_ids, ids)
        valid = (pos < len(all_ids)) & (all_ids[np.minimum(pos, len(all_ids) - 1)] == ids)
        res = _measure_one(obj, clean, image, names, families, stretched, gran.get(obj), speckles)
        if not res:  # e.g. only colocalisation asked for, and one channel
            continue
        block = np.full((len(all_ids), len(res)), np.nan)
        block[pos[valid]] = np.column_stack(list(res.values()))[valid]
        cols.update(zip(res, block.T))
    # one 2-D block: a DataFrame built from a dict of ~1,000 columns costs more than small crops' measurements
    values = np.column_stack(list(cols.values())) if cols else np.empty((len(all_ids), 0))
    values[~np.isfinite(values)] = np.nan
    return pd.DataFrame(values, index=pd.Index(all_ids, name="label"), columns=list(cols)), reasons


def _shared_granularity(image: np.ndarray, cleaned: dict[str, tuple[np.ndarray, np.ndarray]],
                        families: Sequence[str]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Granularity of every object set that has objects, one image spectrum per channel for all of them."""
    if "granularity" not in families:
        return {}
    objs = [o for o, (_, ids) in cleaned.items() if ids.size and "granularity" in CROP_FAMILIES.get(o, families)]
    sets = [cleaned[o][0] for o in objs]
    ops = upsample_operators(image.shape[1:], sets)
    per_channel = [granularity_sets(image[c], sets, ops) for c in range(image.shape[0])]
    return {o: [per_channel[c][k] for c in range(image.shape[0])] for k, o in enumerate(objs)}


@lru_cache(maxsize=64)
def _template_columns(names: tuple[str, ...], obj: str, families: tuple[str, ...]) -> tuple[str, ...]:
    """The columns one object set gets, from a measurement of a synthetic disk."""
    yy, xx = np.mgrid[:32, :32]
    lab = (((yy - 16) ** 2 + (xx - 16) ** 2) < 100).astype(np.int32)
    img = np.stack([np.linspace(0.1, 0.9, 32 * 32).reshape(32, 32) ** (i + 1) for i in range(len(names))])
    return tuple(_measure_one(obj, lab, img, names, families))


def cellprofiler_columns(names: Sequence[str], objects: Sequence[str],
                         families: Sequence[str] = DEFAULT_FAMILIES) -> list[str]:
    """Every ``cp_`` column for these channels and object sets, in the order :func:`measure_objects` writes."""
    return [c for obj in objects for c in _template_columns(tuple(names), obj, tuple(families))]
