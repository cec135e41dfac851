"""Per-channel intensity normalisation: the one place where raw pixels become model inputs.

Training, evaluation and embedding all go through :func:`normalize_planes` (via
:meth:`chadavit.ChannelBatch.from_images`), so a model always sees intensities scaled the same way.

Methods
-------
``"percentile"`` (default)
    Each plane is mapped linearly so that its 1st percentile becomes 0 and its 99.8th percentile
    becomes 1 (the csbdeep / StarDist convention), then clipped to ``[0, 1]``. Works equally for
    uint8, uint16 with a 12-bit camera range, and float images, and is robust to hot pixels.
    A constant plane maps to all zeros.
``"dtype_range"``
    Integer images are divided by their dtype maximum (255 or 65535); float images pass through
    unchanged. This is what the official ChAda-ViT release expects (``pixels / 255``) and what
    converted official checkpoints record.
``"none"``
    Values are cast to float32 unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

NormalizationMethod = Literal["percentile", "dtype_range", "none"]
NORMALIZATION_METHODS: tuple[str, ...] = ("percentile", "dtype_range", "none")

PERCENTILE_LOW = 1.0
PERCENTILE_HIGH = 99.8

SUPPORTED_DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(t) for t in ("uint8", "uint16", "float16", "float32", "float64")
)


def check_method(method: str) -> None:
    if method not in NORMALIZATION_METHODS:
        raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALIZATION_METHODS)}")


def normalize_planes(
    planes: np.ndarray | torch.Tensor,
    method: NormalizationMethod = "percentile",
    low: float = PERCENTILE_LOW,
    high: float = PERCENTILE_HIGH,
) -> torch.Tensor:
    """Scale a stack of channel planes ``(P, H, W)`` to float32 according to ``method``."""
    check_method(method)
    if isinstance(planes, torch.Tensor):
        source_dtype = np.dtype(str(planes.dtype).removeprefix("torch.")) if planes.dtype != torch.bfloat16 else None
        x = planes.detach().to(torch.float32)
    else:
        source_dtype = planes.dtype
        x = torch.from_numpy(np.ascontiguousarray(planes).astype(np.float32, copy=False))
    if x.ndim != 3:
        raise ValueError(f"expected planes of shape (P, H, W), got {tuple(x.shape)}")
    if method == "none":
        return x
    if method == "dtype_range":
        if source_dtype is not None and source_dtype.kind in "ui":
            return x / float(np.iinfo(source_dtype).max)
        return x
    flat = x.reshape(x.shape[0], -1).numpy()
    lo_np, hi_np = np.percentile(flat, [low, high], axis=1).astype(np.float32)
    lo, hi = torch.from_numpy(lo_np), torch.from_numpy(hi_np)
    span = (hi - lo).clamp_min(0)
    scale = torch.where(span > 0, 1.0 / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(span))
    out = (x - lo[:, None, None]) * scale[:, None, None]
    return out.clamp_(0.0, 1.0)
