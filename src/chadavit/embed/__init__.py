"""``chadavit embed``: feature vectors for users' own microscopy images, from any channel set.

Reads folders of TIFF/OME-TIFF/PNG (one file per channel grouped by a filename pattern, or
multi-channel files), CSV listings, OME-Zarr images and plates, and chadavit datasets; cuts fields
into grid or nucleus-centred crops; streams them through a model in batches of equal channel
count; writes Parquet (``Metadata_*`` + ``cls_*`` + ``meanpatch_*``), optionally AnnData, and
resumes interrupted runs. See ``docs/embed.md``.
"""

from chadavit.data.crops import Crop, find_nuclei, grid_crops, nucleus_crops
from chadavit.embed.channels import ChannelError, ChannelSpec
from chadavit.embed.model_spec import load_model, pick_device
from chadavit.embed.output import EmbedError, write_h5ad
from chadavit.embed.runner import CROP_MODES, EmbedConfig, EmbedResult, run_embed
from chadavit.embed.sources import INPUT_FORMATS, ImageRecord, SourceError, open_source, parse_name_metadata

__all__ = [
    "CROP_MODES",
    "INPUT_FORMATS",
    "ChannelError",
    "ChannelSpec",
    "Crop",
    "EmbedConfig",
    "EmbedError",
    "EmbedResult",
    "ImageRecord",
    "SourceError",
    "find_nuclei",
    "grid_crops",
    "load_model",
    "nucleus_crops",
    "open_source",
    "parse_name_metadata",
    "pick_device",
    "run_embed",
    "write_h5ad",
]
