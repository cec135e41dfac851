"""Turning a ``--model`` argument into a model.

Accepted forms:

``DIR``                          one of our checkpoints (``model.safetensors`` + ``config.json``)
``official:PATH[:teacher]``      an official ChAda-ViT ``.ckpt`` or backbone ``.safetensors`` (student by default)
``PATH.ckpt`` / ``PATH.safetensors``  the same; ``--num-heads`` / ``--final-norm-eps`` (12 / 1e-5 assumed, said)
``RUN_DIR`` / ``RUN_DIR/checkpoint.pt``  a pretraining run (its backbone)
``random:PRESET``                a preset at random initialisation (e.g. ``random:chada_vit_moyen``), seeded
"""

from __future__ import annotations

import torch
from torch import nn

from chadavit.embed.output import EmbedError


def load_model(spec: str, num_heads: int | None = None, seed: int = 0, final_norm_eps: float | None = None
               ) -> nn.Module:
    """Build the model a ``--model`` argument names (see :mod:`chadavit.models.spec`)."""
    from chadavit.models.spec import ModelSpecError, load_model_from_spec

    try:
        return load_model_from_spec(spec, num_heads=num_heads, seed=seed, final_norm_eps=final_norm_eps)
    except ModelSpecError as exc:
        raise EmbedError(f"--model: {exc}") from exc


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, then Apple MPS, else CPU; a bad name is a one-line error."""
    from chadavit.device import check_device

    return check_device(name)
