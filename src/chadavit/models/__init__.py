"""Encoders on :class:`~chadavit.ChannelBatch`: ChAda-ViT, its baselines, presets and checkpoints."""

from chadavit.models.chada_vit import ChAdaViT
from chadavit.models.config import ChadaViTConfig
from chadavit.models.io import CheckpointError, load_pretrained, save_pretrained
from chadavit.models.official import load_official_checkpoint
from chadavit.models.output import EncoderOutput
from chadavit.models.registry import build_model, create_model, get_config, list_models, register_model

__all__ = [
    "ChAdaViT",
    "ChadaViTConfig",
    "CheckpointError",
    "EncoderOutput",
    "build_model",
    "create_model",
    "get_config",
    "list_models",
    "load_official_checkpoint",
    "load_pretrained",
    "register_model",
    "save_pretrained",
]
