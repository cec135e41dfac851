"""Turning a ``--model`` argument into an encoder for ``chadavit embed``: :func:`chadavit.models.load_encoder`.

Accepted forms:

``DIR``                          one of our checkpoints (``model.safetensors`` + ``config.json``)
``official:PATH[:teacher]``      an official ChAda-ViT ``.ckpt`` or backbone ``.safetensors`` (student by default)
``PATH.ckpt`` / ``PATH.safetensors``  the same; ``--num-heads`` / ``--final-norm-eps`` (12 / 1e-5 assumed, said)
``RUN_DIR`` / ``RUN_DIR/checkpoint.pt``  a pretraining run (its backbone)
``random:PRESET``                a preset at random initialisation (e.g. ``random:chada_vit_moyen``), seeded

The reference encoders of the evaluation (``raw_pixels``, ``cellprofiler``, ...) are not models to embed with:
``--features cellprofiler`` writes CellProfiler measurements.
"""

from __future__ import annotations

import torch
from torch import nn

from chadavit.embed.output import EmbedError


def load_model(spec: str, num_heads: int | None = None, seed: int = 0, final_norm_eps: float | None = None
               ) -> nn.Module:
    """The encoder a ``--model`` argument names, float32 on the CPU, frozen (the weights as loaded)."""
    from chadavit.models.encoder import is_reference_spec, load_encoder
    from chadavit.models.spec import ModelSpecError

    if is_reference_spec(spec):
        raise EmbedError(f"--model {spec}: a reference encoder of the evaluation, not a model to embed with (for "
                         "CellProfiler measurements use --features cellprofiler)")
    try:
        return load_encoder(spec, num_heads=num_heads, seed=seed, final_norm_eps=final_norm_eps)
    except ModelSpecError as exc:
        raise EmbedError(f"--model: {exc}") from exc


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, then Apple MPS, else CPU; a bad name is a one-line error."""
    from chadavit.device import check_device

    return check_device(name)
