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

from collections.abc import Sequence

import numpy as np

from chadavit.measure.crop_vector import crop_vectors
from chadavit.models.references.ahead import crop_key, is_pending, take, take_back
from chadavit.models.references.ahead import measure_ahead as queue_ahead
from chadavit.models.references.base import ReferenceEncoder, raw_images

LABEL = "CellProfiler (cp_measure)"


class CellProfilerEncoder(ReferenceEncoder):
    """CellProfiler per-cell features from cp_measure: nuclei / cells / cytoplasm x every channel."""

    kind = "cellprofiler"
    physical_units = True

    def __init__(self) -> None:
        super().__init__()
        # part of the feature-cache key: bump when the measurements change (4: cells grown by Propagation;
        # 5: speckle children per parent and the crop's Background object)
        self.version.fill_(5.0)
        self._memo: dict[bytes, np.ndarray] = {}  # per crop and channel names: channel subsets reuse them

    def vectors(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
        if len(self._memo) > 100_000:
            self._memo.clear()
        keys = [crop_key(im, nm) for im, nm in zip(images, names)]
        take_back([k for k in keys if k not in self._memo])  # queued ahead, not started: measured here, now
        todo = {k: i for i, k in enumerate(keys) if k not in self._memo and not is_pending(k)}  # once, in order
        measured = crop_vectors([images[i] for i in todo.values()], [names[i] for i in todo.values()])
        self._memo.update(zip(todo, measured))
        for i, k in enumerate(keys):  # the rest, from the jobs running ahead (measured here if one failed)
            if k not in self._memo:
                vec = take(k)
                self._memo[k] = vec if vec is not None else crop_vectors([images[i]], [names[i]])[0]
        return np.stack([self._memo[k] for k in keys]).astype(np.float32)

    def measure_ahead(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> int:
        """Start measuring these crops in background workers (:mod:`~chadavit.models.references.ahead`), as
        :meth:`vectors` will read them (through this encoder's ``make_batch``); returns how many were started."""
        todo = [(im, nm) for im, nm in zip(images, names) if crop_key(np.asarray(im), nm) not in self._memo]
        raw = [raw_images(self.make_batch([im], [nm]))[0] for im, nm in todo]
        return queue_ahead(raw, [tuple(nm) for _, nm in todo])
