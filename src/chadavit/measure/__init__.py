"""Per-cell measurements below the applications: objects (nuclei, cells, cytoplasm) and CellProfiler features.

``embed``, ``evaluation`` and ``profiling`` all use this package and never one another. It may import the
ground layer (errors) and the core (``data``: nucleus finding is ``chadavit.data.crops``); never an application.

Where the time goes and what is shared: ``granularity.py`` (one image spectrum per channel for all object sets),
``radial.py`` (Zernike and radial geometry once per object set for all channels), ``texture.py`` (every object's
co-occurrence matrices at once); each gives cp_measure's numbers (tests compare). ``children.py``: what cp_measure
lacks, speckle children per parent object (EnhanceOrSuppressFeatures + IdentifyPrimaryObjects + RelateObjects).
"""

from chadavit.measure.cellprofiler import (
    DEFAULT_FAMILIES,
    MeasureError,
    cellprofiler_columns,
    measure_objects,
    to_unit,
)
from chadavit.measure.objects import (
    CELL_CHANNEL_GUESSES,
    Objects,
    central_object,
    crop_objects,
    guess_cell_channel,
    propagate_cells,
    segment_field,
)

__all__ = ["CELL_CHANNEL_GUESSES", "DEFAULT_FAMILIES", "MeasureError", "Objects", "cellprofiler_columns",
           "central_object", "crop_objects", "guess_cell_channel", "measure_objects", "propagate_cells",
           "segment_field", "to_unit"]
