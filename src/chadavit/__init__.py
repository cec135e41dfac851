"""chadavit: channel-adaptive Vision Transformers for heterogeneous microscopy images."""

from chadavit.batch import ChannelBatch, InvalidImageError
from chadavit.data.dataset import ChannelDataset, DatasetWriter, open_dataset

__version__ = "0.1.0"

__all__ = [
    "ChannelBatch",
    "ChannelDataset",
    "DatasetWriter",
    "InvalidImageError",
    "__version__",
    "open_dataset",
]
