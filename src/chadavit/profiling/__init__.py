"""Image-based profiling: well-level profiles, per-plate normalisation and the field's mAP metrics (copairs).

Needs the ``profiling`` extra (``pip install 'chadavit[profiling]'``: copairs and pycytominer).
"""

from chadavit.profiling.map import MapResult, map_scores
from chadavit.profiling.prepare import (
    ProfileError,
    aggregate_profiles,
    feature_columns,
    normalize_profiles,
    resolve_column,
)
from chadavit.profiling.report import profile_embeddings

__all__ = [
    "MapResult",
    "ProfileError",
    "aggregate_profiles",
    "feature_columns",
    "map_scores",
    "normalize_profiles",
    "profile_embeddings",
    "resolve_column",
]
