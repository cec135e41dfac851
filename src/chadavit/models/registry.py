"""Model registry: named presets (timm style) and the classes behind each architecture."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from chadavit.models.config import ChadaViTConfig

_PRESETS: dict[str, Callable[[], ChadaViTConfig]] = {}
_ARCHITECTURES: dict[str, type[nn.Module]] = {}


def register_architecture(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        _ARCHITECTURES[name] = cls
        return cls

    return deco


def register_model(fn: Callable[[], ChadaViTConfig]) -> Callable[[], ChadaViTConfig]:
    """Register a preset: a function named like the model that returns its configuration."""
    _PRESETS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    _ensure_loaded()
    return sorted(n for n in _PRESETS if fnmatch.fnmatch(n, pattern))


def get_config(name: str, **overrides: Any) -> ChadaViTConfig:
    _ensure_loaded()
    if name not in _PRESETS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _PRESETS[name]().replace(**overrides)


def build_model(config: ChadaViTConfig) -> nn.Module:
    _ensure_loaded()
    if config.architecture not in _ARCHITECTURES:
        raise KeyError(f"unknown architecture {config.architecture!r}; known: {sorted(_ARCHITECTURES)}")
    return _ARCHITECTURES[config.architecture](config)


def create_model(name: str, pretrained: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build a preset at random initialisation, or load weights from a ``save_pretrained`` folder.

    ``overrides`` replace fields of the preset's :class:`ChadaViTConfig` (e.g. ``depth=4``).
    """
    if pretrained is not None:
        from chadavit.models.io import load_pretrained

        model = load_pretrained(pretrained)
        if overrides:
            raise ValueError("config overrides cannot be combined with pretrained weights")
        return model
    return build_model(get_config(name, **overrides))


def _ensure_loaded() -> None:
    # importing these modules runs their @register_* decorators
    import chadavit.models.baselines  # noqa: F401
    import chadavit.models.presets  # noqa: F401
