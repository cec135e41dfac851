"""Model registry: a leaf that only stores named presets (timm style) and the classes behind each architecture.

Presets (:mod:`chadavit.models.presets`) and baselines register into it; :mod:`chadavit.models.catalog`
imports them all and builds models. This module imports nothing of the models package but the
config, so imports run one way: registry <- presets/baselines <- catalog <- io <- official/hub <- factory.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from chadavit.models.config import ChadaViTConfig

PRESETS: dict[str, Callable[[], ChadaViTConfig]] = {}
ARCHITECTURES: dict[str, type[nn.Module]] = {}


def register_architecture(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: ``config.architecture == name`` builds this class."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = cls
        return cls

    return deco


def register_model(fn: Callable[[], ChadaViTConfig]) -> Callable[[], ChadaViTConfig]:
    """Register a preset: a function named like the model that returns its configuration."""
    PRESETS[fn.__name__] = fn
    return fn
