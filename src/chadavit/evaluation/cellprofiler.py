"""The hand-crafted baseline of every report: CellProfiler measurements (cp_measure) of the crop's cell.

Per single-cell crop: the objects of :func:`chadavit.measure.crop_objects` (the nucleus nearest the crop centre,
its cell grown over a cell-body channel where one is named, the cytoplasm, and the whole crop as ``Image``)
measured by
:func:`chadavit.measure.measure_objects`. A value CellProfiler leaves undefined for a cell (NaN) enters the
read-out as 0, the mean after the probe's standardisation would be near it anyway; this is the one place a
missing measurement becomes a number, and only inside the evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from chadavit.evaluation.handcrafted import _NumpyEncoder
from chadavit.measure import cellprofiler_columns, crop_objects, measure_objects, to_unit

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


class CellProfilerEncoder(_NumpyEncoder):
    """CellProfiler per-cell features from cp_measure: nuclei / cells / cytoplasm x every channel."""

    kind = "cellprofiler"

    def __init__(self) -> None:
        super().__init__()
        self.version.fill_(3.0)  # part of the feature-cache key: bump when the measurements change
        self._memo: dict[bytes, np.ndarray] = {}  # per crop and channel names: channel subsets reuse them

    def numpy_features(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
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


def _standardised_block(x: np.ndarray) -> np.ndarray:
    """Each feature to mean 0 / std 1 over the images given (no labels used), the block then divided by the square
    root of its width, so two blocks weigh the same in a distance whatever their sizes."""
    x = np.asarray(x, np.float64)
    sd = x.std(0)
    z = (x - x.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
    return z / np.sqrt(max(x.shape[1], 1))


class HybridEncoder(_NumpyEncoder):
    """CellProfiler ⊕ a model's compact embedding (CLS), each block standardised (:func:`_standardised_block`)."""

    kind = "hybrid"

    def __init__(self, learned: object, cellprofiler: CellProfilerEncoder | None = None) -> None:
        super().__init__()
        self.learned = learned  # a LoadedModel (its weights are part of this encoder's cache key via `inner`)
        self.inner = learned.model  # type: ignore[attr-defined]
        self.cellprofiler = cellprofiler or CellProfilerEncoder()

    def numpy_features(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
        import pandas as pd

        from chadavit.evaluation.data import EvalData
        from chadavit.evaluation.features import extract_features

        cp = self.cellprofiler.numpy_features(images, names)
        data = EvalData("hybrid", list(images), [tuple(n) for n in names], pd.DataFrame(index=range(len(images))))
        cls = extract_features(self.learned, data, ("cls",), progress=False, zero_fill=False)["cls"]  # type: ignore[arg-type]
        return np.concatenate([_standardised_block(cp), _standardised_block(cls)], 1).astype(np.float32)


def hybrid_models(models: Sequence[object], baselines: Sequence[str]) -> list[object]:
    """A hybrid ``CellProfiler + <model>`` for every trained model in ``models`` (not for baselines), sharing the
    CellProfiler baseline's per-crop measurements when it is among ``models``."""
    from chadavit.evaluation.features import LoadedModel, weights_hash

    cp = next((m.model for m in models if isinstance(getattr(m, "model", None), CellProfilerEncoder)), None)
    out = []
    for lm in models:
        if lm.label in baselines or isinstance(lm.model, _NumpyEncoder):  # type: ignore[attr-defined]
            continue
        enc = HybridEncoder(lm, cp)
        label = f"CellProfiler + {lm.label}"  # type: ignore[attr-defined]
        key = "hybrid-" + lm.key.rsplit("-", 1)[0][:50] + "-" + weights_hash(enc)  # type: ignore[attr-defined]
        out.append(LoadedModel(spec=f"hybrid:{lm.spec}", label=label, model=enc, key=key))  # type: ignore[attr-defined]
    return out
