"""chadavit: channel-adaptive Vision Transformers for heterogeneous microscopy images."""

import chadavit.openmp  # noqa: F401  (first: OMP_WAIT_POLICY must be set before torch loads OpenMP)
from chadavit.batch import ChannelBatch, InvalidImageError
from chadavit.data.dataset import ChannelDataset, DatasetWriter, open_dataset
from chadavit.models import (
    ChadaViTConfig,
    EncoderOutput,
    create_model,
    list_models,
    load_official_checkpoint,
    load_pretrained,
    save_pretrained,
)

__version__ = "0.1.0"

__all__ = [
    "ChadaViTConfig",
    "ChannelBatch",
    "ChannelDataset",
    "DatasetWriter",
    "EncoderOutput",
    "InvalidImageError",
    "__version__",
    "create_model",
    "list_models",
    "load_official_checkpoint",
    "load_pretrained",
    "open_dataset",
    "save_pretrained",
]
