"""Every registered preset and architecture, loaded: list them, get a preset's config, build a model."""

from __future__ import annotations

import fnmatch
from typing import Any

from torch import nn

import chadavit.models.baselines  # noqa: F401  (registers the baselines)
import chadavit.models.presets  # noqa: F401  (registers the ChAda-ViT presets)
from chadavit.models.config import ChadaViTConfig
from chadavit.models.registry import ARCHITECTURES, PRESETS


def list_models(pattern: str = "*") -> list[str]:
    """Preset names matching a shell-style ``pattern``."""
    return sorted(n for n in PRESETS if fnmatch.fnmatch(n, pattern))


def get_config(name: str, **overrides: Any) -> ChadaViTConfig:
    """The configuration of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return PRESETS[name]().replace(**overrides)


def build_model(config: ChadaViTConfig) -> nn.Module:
    """A randomly initialised model of ``config.architecture``."""
    if config.architecture not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {config.architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.architecture](config)
