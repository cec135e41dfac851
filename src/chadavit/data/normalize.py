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
    converted official checkpoints record. A uint16 image whose values never exceed 4095 (12-bit
    camera) or 16383 (14-bit) is divided by that bit depth's maximum instead of 65535, which would
    leave it nearly black; a warning says so once per process.
``"dataset"``
    Keeps absolute intensity (DNA content, stain strength), which per-image stretching removes: integer
    planes are divided by their dtype maximum, then each channel is mapped by ONE ``(low, high)`` pair
    per channel name computed over the whole training set (:mod:`chadavit.data.stats`, the 1st and
    99.8th percentiles) and stored in the model config (``normalization_stats``) so embedding applies
    the same numbers; clipped to ``[0, 1]``. A channel without statistics falls back to ``percentile``.
    When a stain comes in several dtypes (8-bit and 12-bit-in-uint16 studies), its statistics are also kept
    per dtype (``"DNA|uint16"``), so a 12-bit image is not squeezed into the range of the 8-bit ones.
``"none"``
    Values are cast to float32 unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

NormalizationMethod = Literal["percentile", "dtype_range", "dataset", "none"]
NORMALIZATION_METHODS: tuple[str, ...] = ("percentile", "dtype_range", "dataset", "none")
ChannelStats = dict[str, list[float]]  # channel name -> [low, high] in dtype-range units (see "dataset")

PERCENTILE_LOW = 1.0
PERCENTILE_HIGH = 99.8

SUPPORTED_DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(t) for t in ("uint8", "uint16", "float16", "float32", "float64")
)


log = logging.getLogger(__name__)
_warned_bit_depth: set[int] = set()
_warned_float: list[bool] = []
_warned_outside: set[tuple[float, float]] = set()


def integer_range(x: torch.Tensor | np.ndarray, dtype: np.dtype) -> float:
    """The value that maps to 1 under ``dtype_range``: the dtype maximum, or a detected 12/14-bit camera range.

    Why: 12- and 14-bit cameras store into uint16 files; dividing by 65535 makes such images ~16x too dark.
    Used by ``dtype_range``, by ``dataset`` (before the per-stain statistics, which are computed the same way
    in :mod:`chadavit.data.stats`) and by the readers when they scale mixed-dtype channel files.
    """
    full = float(np.iinfo(dtype).max)
    if dtype != np.dtype("uint16"):
        return full
    peak = float(x.max()) if x.shape and np.prod(x.shape) else 0.0
    for bits in (12, 14):
        if 0 < peak <= 2**bits - 1:
            if bits not in _warned_bit_depth:
                _warned_bit_depth.add(bits)
                log.warning("uint16 image with maximum %d <= %d: scaled as a %d-bit camera image (/ %d), not / 65535",
                            int(peak), 2**bits - 1, bits, 2**bits - 1)
            return float(2**bits - 1)
    return full


def _warn_unscaled_float(x: torch.Tensor) -> None:
    """Float pixels have no range to divide by: say so once when they are clearly not in [0, 1]."""
    if not _warned_float and x.numel() and float(x.max()) > 1.5:
        _warned_float.append(True)
        log.warning("float image with values up to %.4g under dtype_range: floats pass through unscaled (no "
                    "integer range to divide by); use percentile normalisation or save the images as integers",
                    float(x.max()))


def check_method(method: str) -> None:
    if method not in NORMALIZATION_METHODS:
        raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALIZATION_METHODS)}")


def normalize_planes(
    planes: np.ndarray | torch.Tensor,
    method: NormalizationMethod = "percentile",
    low: float = PERCENTILE_LOW,
    high: float = PERCENTILE_HIGH,
    stats: Sequence[Sequence[float] | None] | None = None,
) -> torch.Tensor:
    """Scale a stack of channel planes ``(P, H, W)`` to float32 according to ``method``.

    ``stats`` (method ``"dataset"`` only) gives each plane its ``(low, high)`` or None (percentile fallback).
    """
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
            return x / integer_range(x, source_dtype)
        _warn_unscaled_float(x)
        return x
    if method == "dataset":
        return _dataset_scale(x, source_dtype, stats, low, high)
    return _percentile(x, low, high)


def _dataset_scale(x: torch.Tensor, source_dtype: np.dtype | None, stats: Sequence[Sequence[float] | None] | None,
                   low: float, high: float) -> torch.Tensor:
    if source_dtype is not None and source_dtype.kind in "ui":
        x = x / float(np.iinfo(source_dtype).max)  # the plain dtype range: stats carry the camera's real range
    per_plane = list(stats) if stats is not None else [None] * x.shape[0]
    if len(per_plane) != x.shape[0]:
        raise ValueError(f"{len(per_plane)} channel statistics for {x.shape[0]} planes")
    out = torch.empty_like(x)
    missing = [i for i, st in enumerate(per_plane) if st is None]
    if missing:
        out[missing] = _percentile(x[missing], low, high)
    for i, st in enumerate(per_plane):
        if st is None:
            continue
        lo, hi = float(st[0]), float(st[1])
        mn, mx = torch.aminmax(x[i])
        if hi > lo and float(mx) <= lo and float(mx) > float(mn):
            # every pixel below the training set's low value: another camera scale (8-bit values in a 16-bit
            # file), not a dark image of the same kind (whose background sits around `lo`); the statistics would
            # blank the plane, so it is stretched on its own percentiles instead, once said
            if (lo, hi) not in _warned_outside:
                _warned_outside.add((lo, hi))
                log.warning("a plane lies wholly below its stain's training range (%.4g-%.4g of the dtype range): "
                            "another intensity scale; scaled by its own percentiles instead of blanked", lo, hi)
            out[i] = _percentile(x[i : i + 1], low, high)[0]
            continue
        out[i] = ((x[i] - lo) / (hi - lo)).clamp_(0.0, 1.0) if hi > lo else torch.zeros_like(x[i])
    return out


def stats_key(name: str, dtype: np.dtype | str | None = None) -> str:
    """The statistics entry of a channel name, or of a name for one dtype (``"DNA|uint16"``)."""
    return f"{name}|{np.dtype(dtype).name}" if dtype is not None else str(name)


def as_stats_dtype(arr: np.ndarray, stats: ChannelStats | None) -> np.ndarray:
    """8-bit values in a 16-bit array, read as the uint8 image they are where the statistics know 8-bit data.

    Why: per-dtype statistics put a stain's uint16 camera counts and its uint8 images on their own ranges; a
    uint16 file holding 0-255 (an 8-bit image saved wide, like the DSB2018 crops) would otherwise get the 16-bit
    range and be blanked. Only when ``stats`` has a ``|uint8`` entry; the cast is lossless.
    """
    if (not stats or arr.dtype != np.uint16 or arr.size == 0
            or not any(str(k).endswith("|uint8") for k in stats) or int(arr.max()) > 255):
        return arr
    return arr.astype(np.uint8)


def match_stats(arr: np.ndarray, names: Sequence[str] | None, stats: ChannelStats | None
                ) -> tuple[np.ndarray, list[list[float] | None] | None]:
    """One image for ``"dataset"`` scaling: the array as the statistics read it (:func:`as_stats_dtype`) and its
    per-plane ``(low, high)`` (:func:`plane_stats`); the one step every road (batches, the training loader) takes."""
    arr = as_stats_dtype(arr, stats)
    return arr, plane_stats(names, arr.shape[0], stats, arr.dtype)


def plane_stats(names: Sequence[str] | None, n_planes: int, stats: ChannelStats | None,
                dtype: np.dtype | str | None = None) -> list[list[float] | None] | None:
    """Per-plane ``(low, high)`` for one image's channel names (None where a name has no statistics).

    ``dtype`` (the image's) picks the per-dtype entry where the training set had one, then the name's.
    """
    if not stats:
        return None
    keys = [str(n) for n in names] if names is not None else ["*"] * n_planes

    def find(name: str) -> list[float] | None:
        for key in ((stats_key(name, dtype),) if dtype is not None else ()) + (name,) + \
                ((stats_key("*", dtype),) if dtype is not None else ()) + ("*",):
            if key in stats:
                return stats[key]
        return None

    return [find(k) for k in keys]


def _percentile(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1).numpy()
    lo_np, hi_np = np.percentile(flat, [low, high], axis=1).astype(np.float32)
    lo, hi = torch.from_numpy(lo_np), torch.from_numpy(hi_np)
    span = (hi - lo).clamp_min(0)
    scale = torch.where(span > 0, 1.0 / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(span))
    out = (x - lo[:, None, None]) * scale[:, None, None]
    return out.clamp_(0.0, 1.0)
