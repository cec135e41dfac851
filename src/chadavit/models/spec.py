"""Model specs: one string names any encoder, for ``--model`` in ``embed``, ``eval`` and experiments.

``DIR``                               one of our checkpoints (``model.safetensors`` + ``config.json``)
``official:PATH[:teacher|:student]``  an official ChAda-ViT ``.ckpt`` or backbone ``.safetensors`` (student by default)
``PATH.ckpt`` / ``PATH.safetensors``  the same, student
``random:PRESET[,key=value...]``      a preset at random initialisation (seeded), with config overrides,
                                      e.g. ``random:fixed_channel_vit_tiny,in_chans=3``
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from chadavit.errors import ChadavitError

OFFICIAL_SUFFIXES = (".ckpt", ".safetensors", ".pth", ".pt")


class ModelSpecError(ChadavitError, ValueError):
    """A model spec names nothing loadable; the message says what forms are accepted."""


def _parse_value(v: str) -> object:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def load_model_from_spec(spec: str, num_heads: int = 12, seed: int = 0, allow_bare_preset: bool = False) -> nn.Module:
    """Build the model ``spec`` names (see the module docstring); weights in eval mode.

    ``allow_bare_preset`` accepts ``PRESET`` for ``random:PRESET``; tools that produce features for
    users keep it off, so that nobody embeds a plate with random weights by accident.
    """
    from chadavit.models import create_model, list_models, load_official_checkpoint, load_pretrained

    spec = spec.strip()
    if spec.startswith("random:") or (allow_bare_preset and spec.split(",")[0] in list_models()):
        name, *opts = spec.removeprefix("random:").split(",")
        if name not in list_models():
            raise ModelSpecError(f"unknown preset {name!r} in model spec {spec!r}; presets: {', '.join(list_models())}")
        overrides = {}
        for opt in opts:
            if "=" not in opt:
                raise ModelSpecError(f"model spec {spec!r}: override {opt!r} is not key=value")
            key, value = opt.split("=", 1)
            overrides[key.strip()] = _parse_value(value.strip())
        torch.manual_seed(seed)
        return create_model(name, **overrides).eval()
    if spec.startswith("official:"):
        rest, teacher = spec[len("official:"):], False
        for role in ("teacher", "student"):
            if rest.endswith(f":{role}"):
                rest, teacher = rest[: -len(role) - 1], role == "teacher"
        if not Path(rest).is_file():
            raise ModelSpecError(f"model spec {spec}: official checkpoint {rest} not found")
        return load_official_checkpoint(rest, num_heads=num_heads, teacher=teacher)
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSpecError(f"model spec {spec}: folder has no config.json (expected a save_pretrained checkpoint)")
        return load_pretrained(path)
    if path.is_file():
        if path.name == "model.safetensors" and (path.parent / "config.json").is_file():
            return load_pretrained(path.parent)
        if path.suffix.lower() in OFFICIAL_SUFFIXES:
            return load_official_checkpoint(path, num_heads=num_heads)
        raise ModelSpecError(f"model spec {spec}: unsupported file type {path.suffix!r} "
                             f"(use {', '.join(OFFICIAL_SUFFIXES)})")
    if spec.split(",")[0] in list_models():
        raise ModelSpecError(f"model spec {spec} is a preset without weights; write random:{spec} to use a randomly "
                             "initialised model (useful only as a baseline), or give a checkpoint")
    raise ModelSpecError(f"model spec {spec}: no such checkpoint folder or file; use DIR, official:PATH[:teacher], "
                         "PATH.ckpt|.safetensors or random:PRESET")
