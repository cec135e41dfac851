"""Turning a ``--model`` argument into a model.

Accepted forms:

``DIR``                          one of our checkpoints (``model.safetensors`` + ``config.json``)
``official:PATH[:teacher]``      an official ChAda-ViT ``.ckpt`` or backbone ``.safetensors`` (student by default)
``PATH.ckpt`` / ``PATH.safetensors``  the same, with ``--num-heads`` (12 for the released model)
``random:PRESET``                a preset at random initialisation (e.g. ``random:chada_vit_moyen``), seeded
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from chadavit.embed.output import EmbedError

OFFICIAL_SUFFIXES = (".ckpt", ".safetensors", ".pth", ".pt")


def load_model(spec: str, num_heads: int = 12, seed: int = 0) -> nn.Module:
    """Build the model a ``--model`` argument names (see the module docstring)."""
    from chadavit.models import create_model, list_models, load_official_checkpoint, load_pretrained

    if spec.startswith("random:"):
        name = spec[len("random:"):]
        if name not in list_models():
            raise EmbedError(f"unknown preset {name!r} in --model {spec}; presets: {', '.join(list_models())}")
        torch.manual_seed(seed)
        return create_model(name)
    if spec.startswith("official:"):
        rest = spec[len("official:"):]
        teacher = False
        for role in ("teacher", "student"):
            if rest.endswith(f":{role}"):
                rest, teacher = rest[: -len(role) - 1], role == "teacher"
        path = Path(rest)
        if not path.is_file():
            raise EmbedError(f"--model {spec}: official checkpoint {path} not found")
        return load_official_checkpoint(path, num_heads=num_heads, teacher=teacher)
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EmbedError(f"--model {spec}: folder has no config.json (expected a save_pretrained checkpoint)")
        return load_pretrained(path)
    if path.is_file():
        if path.name == "model.safetensors" and (path.parent / "config.json").is_file():
            return load_pretrained(path.parent)
        if path.suffix.lower() in OFFICIAL_SUFFIXES:
            return load_official_checkpoint(path, num_heads=num_heads)
        raise EmbedError(f"--model {spec}: unsupported file type {path.suffix!r} (use {', '.join(OFFICIAL_SUFFIXES)})")
    if spec in list_models():
        raise EmbedError(f"--model {spec} is a preset without weights; write random:{spec} to embed with a randomly "
                         "initialised model (useful only as a baseline), or give a checkpoint")
    raise EmbedError(f"--model {spec}: no such checkpoint folder or file; use DIR, official:PATH[:teacher], "
                     "PATH.ckpt|.safetensors or random:PRESET")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, then Apple MPS, else CPU."""
    if name != "auto":
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise EmbedError(f"--device {name}: CUDA is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
