"""The hand-crafted baseline of every report: CellProfiler measurements (cp_measure) of the crop's cell.

Per single-cell crop: the objects of :func:`chadavit.measure.crop_objects` (the nucleus nearest the crop centre,
its cell grown over a cell-body channel where one is named, the cytoplasm, and the whole crop as ``Image``)
measured by
:func:`chadavit.measure.measure_objects`. A value CellProfiler leaves undefined for a cell (NaN) enters the
read-out as 0, the mean after the probe's standardisation would be near it anyway; this is the one place a
missing measurement becomes a number, and only inside this reference encoder (``chadavit embed --features
cellprofiler`` keeps NaN). A reference encoder (:mod:`chadavit.models.references.base`): the vector is ``cls``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from chadavit.measure import cellprofiler_columns, crop_objects, measure_objects, to_unit
from chadavit.models.references.base import ReferenceEncoder

LABEL = "CellProfiler (cp_measure)"


def cellprofiler_vector(img: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """One crop ``(C, H, W)`` -> the ``cp_`` measurements of its central cell, in :func:`cellprofiler_columns`
    order (NaN -> 0)."""
    unit = to_unit(img)
    objects = crop_objects(unit, names).named(image=True)
    df, _ = measure_objects(unit, names, objects)
    cols = cellprofiler_columns(names, list(objects))
    row = df.reindex(columns=cols).iloc[0] if len(df) else np.full(len(cols), np.nan)
    return np.nan_to_num(np.asarray(row, np.float64), nan=0.0, posinf=0.0, neginf=0.0)


class CellProfilerEncoder(ReferenceEncoder):
    """CellProfiler per-cell features from cp_measure: nuclei / cells / cytoplasm x every channel."""

    kind = "cellprofiler"

    def __init__(self) -> None:
        super().__init__()
        self.version.fill_(4.0)  # part of the feature-cache key: bump when the measurements change (4: cells by Propagation)
        self._memo: dict[bytes, np.ndarray] = {}  # per crop and channel names: channel subsets reuse them

    def vectors(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
        if len(self._memo) > 100_000:
            self._memo.clear()
        out = []
        for im, nm in zip(images, names):
            key = hashlib.sha1(np.ascontiguousarray(im).tobytes() + im.dtype.str.encode() +
                               "|".join(nm).encode()).digest()
            if key not in self._memo:
                self._memo[key] = cellprofiler_vector(im, nm)
            out.append(self._memo[key])
        return np.stack(out).astype(np.float32)
