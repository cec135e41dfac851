"""The one Encoder contract, and :func:`load_encoder`, the one door from a ``--model`` string to an encoder.

Every encoder, trained (ChAda-ViT and its baselines) or a reference that needs no training (pixel statistics,
raw pixels, CellProfiler measurements, the old hand-crafted statistics, the CellProfiler + model hybrid),
offers the same four things, so evaluation, embedding and experiments never ask which kind they hold:

``config``        at least ``normalization``, ``normalization_stats``, ``embed_dim`` (and ``architecture``,
                  ``pooling``: a ``"concat"`` pooling or a fixed-channel stem makes channel slots meaningful)
``embed_dim``     the size of ``cls``
``make_batch``    raw ``(C, H, W)`` pixels -> a :class:`~chadavit.ChannelBatch` validated and scaled the way this
                  encoder expects (through :meth:`ChannelBatch.from_images`, the one pixel road)
``__call__``      ``(batch, return_attention=False) -> EncoderOutput``
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from chadavit.batch import ChannelBatch
from chadavit.models.output import EncoderOutput

log = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """What every encoder offers (see the module docstring)."""

    config: Any

    @property
    def embed_dim(self) -> int: ...

    def make_batch(self, images: Sequence[np.ndarray | torch.Tensor],
                   channel_names: Sequence[Sequence[str]] | None = None,
                   sources: Sequence[str] | None = None) -> ChannelBatch: ...

    def __call__(self, batch: ChannelBatch, return_attention: bool = False) -> EncoderOutput: ...


def prepare_encoder(model: torch.nn.Module, device: str | torch.device = "cpu", precision: str = "fp32",
                    cast: bool = True) -> torch.nn.Module:
    """Frozen (no gradients), eval mode, on ``device``; cast to bf16 where ``precision`` asks and ``cast`` allows
    (references compute in float32 or numpy: ``cast=False``)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.to(device)
    if cast:
        from chadavit.precision import prepare_inference, resolve_precision

        dtype = resolve_precision(precision, torch.device(device))
        if dtype != torch.float32:
            model = prepare_inference(model, dtype)
    return model


def is_reference_spec(spec: str) -> bool:
    """Whether ``spec`` names a reference encoder (``raw_pixels``, ``cellprofiler``, ..., ``hybrid:SPEC``)."""
    from chadavit.models.references import REFERENCES

    spec = spec.strip()
    return spec in REFERENCES or spec.startswith("hybrid:")


def load_encoder(spec: str, *, device: str | torch.device = "cpu", precision: str = "fp32", seed: int = 0,
                 allow_bare_preset: bool = False, num_heads: int | None = None,
                 final_norm_eps: float | None = None, overrides: dict[str, Any] | None = None) -> torch.nn.Module:
    """The encoder ``spec`` names, frozen, in eval mode, on ``device`` (bf16 where ``precision`` asks).

    ``spec``: any form of :func:`chadavit.models.spec.load_model_from_spec` (checkpoints, runs, ``hf:``,
    ``official:``, ``random:PRESET``), a reference (``raw_pixels``, ``cellprofiler``, ``handcrafted``,
    ``pixel_stats``; ``pixels`` is a deprecated alias of ``pixel_stats``), or ``hybrid:SPEC`` (CellProfiler
    measurements beside the CLS of the encoder SPEC names). ``seed`` seeds ``random:`` presets;
    ``allow_bare_preset`` accepts ``PRESET`` for ``random:PRESET``; ``num_heads`` / ``final_norm_eps`` apply to
    official checkpoints. ``overrides`` change a trained model's config for this use only (same weights, e.g.
    ``{"pooling": "concat"}``); a key the config does not have raises
    :class:`~chadavit.models.config.ModelConfigError`.
    """
    from chadavit.models.references import REFERENCES, HybridEncoder

    spec = spec.strip()
    if spec in REFERENCES:
        return prepare_encoder(REFERENCES[spec](), device, precision, cast=False)
    if spec.startswith("hybrid:"):
        inner = load_encoder(spec.removeprefix("hybrid:"), device=device, precision=precision, seed=seed,
                             allow_bare_preset=allow_bare_preset, num_heads=num_heads, final_norm_eps=final_norm_eps)
        return prepare_encoder(HybridEncoder(inner), device, precision, cast=False)
    from chadavit.models.spec import load_model_from_spec

    model = load_model_from_spec(spec, num_heads=num_heads, seed=seed, allow_bare_preset=allow_bare_preset,
                                 final_norm_eps=final_norm_eps)
    if overrides:
        model = _with_config(model, overrides)
    return prepare_encoder(model, device, precision)


def _with_config(model: torch.nn.Module, overrides: dict[str, Any]) -> torch.nn.Module:
    """The same weights in a model built from ``model.config`` with ``overrides`` applied."""
    from chadavit.models.catalog import build_model

    new = build_model(model.config.replace(**overrides))
    new.load_state_dict(model.state_dict())
    return new
