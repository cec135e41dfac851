"""``chadavit embed --features cellprofiler``: CellProfiler measurements (``cp_`` columns) for each crop's cell.

Which cell a row measures:

- ``--crops nuclei``: the cell of that crop's nucleus. Nuclei, cells (grown over ``--cell-channel`` or a channel
  named like a cell-body stain) and cytoplasm are segmented once per field and measured together;
  ``Metadata_NucleusLabel`` is the label measured.
- ``--crops full`` / ``grid`` (e.g. images that already are single-cell crops): the object nearest the crop
  centre (:func:`chadavit.measure.crop_objects`, the rule of the evaluation's CellProfiler baseline), plus the
  crop's image-level measurements (``cp_Image_...``: intensity, texture, granularity of the whole crop) and its
  background (``cp_Background_...``: intensities of the crop's pixels outside every object; ours).

A cell that cannot be measured gets NaN ``cp_`` columns and its reason in ``Metadata_CPError`` (null when
measured): no nuclear stain, no object in the crop, an object too small. A nucleus touching the field (or crop)
border is measured on its visible part and flagged ``Metadata_CPTouchesBorder`` (CellProfiler would discard it;
filter on the flag to do the same).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from chadavit.data.crops import Crop, extract
from chadavit.errors import ChadavitError

CP_METADATA = ("CPError", "CPTouchesBorder")


def _touches(labels: np.ndarray) -> set[int]:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return {int(k) for k in np.unique(edge) if k > 0}


def _objects_for(unit: np.ndarray, names: Sequence[str], nuclei: np.ndarray, cell_channel: str | None,
                 nucleus_index: int | None) -> dict[str, np.ndarray]:
    from chadavit.measure import Objects, guess_cell_channel, propagate_cells

    low = [n.lower() for n in names]
    if cell_channel is not None:
        c = low.index(cell_channel.lower()) if cell_channel.lower() in low else None
    else:
        c = guess_cell_channel(names, exclude=nucleus_index)
    cells = propagate_cells(nuclei, unit[c]) if c is not None and c != nucleus_index else None
    return Objects(nuclei, cells).named()


def measure_nuclei_crops(raw: np.ndarray, names: Sequence[str], crops: Sequence[Crop], nuclei: np.ndarray,
                         cell_channel: str | None = None, nucleus_index: int | None = None
                         ) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """``--crops nuclei``: one ``cp_`` row per crop (its ``NucleusLabel``), measured once per field."""
    from chadavit.measure import measure_objects, to_unit

    unit = to_unit(raw)
    labels = [int(dict(c.meta)["NucleusLabel"]) for c in crops]
    nuclei = np.where(np.isin(nuclei, labels), nuclei, 0)  # only the nuclei that have a row (min area, max crops)
    objects = _objects_for(unit, names, nuclei, cell_channel, nucleus_index)
    df, reasons = measure_objects(unit, names, objects)
    border = _touches(nuclei)
    rows = df.reindex(labels)
    meta = [{"CPError": reasons.get(k) if k in df.index else f"nucleus {k} was not measured",
             "CPTouchesBorder": int(k in border)} for k in labels]
    return rows.reset_index(drop=True), meta


def measure_central_crops(raw: np.ndarray, names: Sequence[str], crops: Sequence[Crop],
                          cell_channel: str | None = None, nucleus_channel: str | None = None
                          ) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """``--crops full`` / ``grid``: the object nearest each crop's centre, measured in that crop."""
    from chadavit.measure import cellprofiler_columns, crop_objects, measure_objects, to_unit

    unit = to_unit(raw)
    frames, meta = [], []
    for crop in crops:
        sub = extract(unit, crop)
        try:
            obj = crop_objects(sub, names, nucleus_channel, cell_channel, whole_if_none=False)
            named = obj.named(image=True, background=True)
            df, reasons = measure_objects(sub, names, named)
            err = reasons.get(1)
            row = df.reindex(columns=cellprofiler_columns(names, list(named))).reindex([1])
            touches = int(1 in _touches(obj.primary_labels))
        except ChadavitError as exc:
            row, err, touches = pd.DataFrame(index=[1]), str(exc), 0
        frames.append(row)
        meta.append({"CPError": err, "CPTouchesBorder": touches})
    return pd.concat(frames, ignore_index=True, sort=False), meta
