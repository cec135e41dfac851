"""chadavit: channel-adaptive Vision Transformers for heterogeneous microscopy images.

The package face is lazy (PEP 562): ``import chadavit`` loads neither torch nor pandas until one of the names
below is used, so that the ``chadavit`` command starts fast and the version leaf can be read cheaply.
"""

import importlib

import chadavit.openmp  # noqa: F401  (first: OMP_WAIT_POLICY must be set before torch loads OpenMP)
from chadavit.version import __version__  # noqa: F401  (re-exported: chadavit.__version__)

_EXPORTS = {
    "ChannelBatch": "chadavit.batch",
    "InvalidImageError": "chadavit.batch",
    "ChannelDataset": "chadavit.data.dataset",
    "DatasetWriter": "chadavit.data.dataset",
    "open_dataset": "chadavit.data.dataset",
    "ChadaViTConfig": "chadavit.models",
    "EncoderOutput": "chadavit.models",
    "create_model": "chadavit.models",
    "list_models": "chadavit.models",
    "load_official_checkpoint": "chadavit.models",
    "load_pretrained": "chadavit.models",
    "save_pretrained": "chadavit.models",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chadavit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
