"""DINO pretraining for channel-adaptive encoders: config, head, loss, schedules, trainer, distributed helpers."""

from chadavit.pretrain.config import ConfigError, PretrainConfig, apply_override, list_presets, load_config
from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.loss import DINOLoss
from chadavit.pretrain.schedules import cosine_schedule

__all__ = ["ConfigError", "DINOHead", "DINOLoss", "PretrainConfig", "apply_override", "cosine_schedule",
           "list_presets", "load_config", "train"]


def train(cfg: PretrainConfig) -> dict:
    """Run DINO pretraining (see :func:`chadavit.pretrain.trainer.train`)."""
    from chadavit.pretrain.trainer import train as _train

    return _train(cfg)
