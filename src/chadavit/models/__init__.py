"""Encoders on :class:`~chadavit.ChannelBatch`: ChAda-ViT, its baselines, presets and checkpoints.

Layers of this package, each importing only those before it:
``config`` < ``registry`` < ``presets``/``baselines`` < ``catalog`` < ``io`` < ``official`` < ``hub`` < ``factory``.
"""

from chadavit.models.catalog import build_model, get_config, list_models
from chadavit.models.chada_vit import ChAdaViT
from chadavit.models.config import ChadaViTConfig
from chadavit.models.encoder import Encoder, load_encoder, prepare_encoder
from chadavit.models.factory import create_model
from chadavit.models.hub import HubError, load_from_hub, push_folder, save_pretrained
from chadavit.models.io import CheckpointError, load_pretrained
from chadavit.models.official import load_official_checkpoint
from chadavit.models.output import EncoderOutput
from chadavit.models.registry import register_architecture, register_model

__all__ = [
    "ChAdaViT",
    "ChadaViTConfig",
    "CheckpointError",
    "Encoder",
    "EncoderOutput",
    "HubError",
    "build_model",
    "create_model",
    "get_config",
    "list_models",
    "load_encoder",
    "load_from_hub",
    "load_official_checkpoint",
    "load_pretrained",
    "prepare_encoder",
    "push_folder",
    "register_architecture",
    "register_model",
    "save_pretrained",
]
