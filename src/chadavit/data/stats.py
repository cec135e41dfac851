"""Per-channel intensity statistics over a training set, for the ``"dataset"`` normalisation.

Why: per-image percentile stretching maps a G1 and a G2 nucleus to the same brightness; one ``(low, high)``
per channel name over the whole training set keeps their 2x DNA-content difference. The numbers are stored
in the model config (``normalization_stats``) so ``embed`` and ``eval`` scale new images identically.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from chadavit.data.dataset import ChannelDataset
from chadavit.data.normalize import PERCENTILE_HIGH, PERCENTILE_LOW, ChannelStats, stats_key

log = logging.getLogger(__name__)
ALL_CHANNELS = "*"  # fallback entry for channel names the training set did not have


def channel_stats(datasets: Sequence[ChannelDataset], max_images: int = 256, pixels_per_plane: int = 4096,
                  seed: int = 0, low: float = PERCENTILE_LOW, high: float = PERCENTILE_HIGH) -> ChannelStats:
    """``{channel name: [low, high]}`` percentiles of dtype-range-scaled pixels over a sample of images.

    Images are sampled evenly over all datasets (at most ``max_images``); integer pixels are divided by
    their dtype maximum first. A stain found in several dtypes also gets one entry per dtype
    (``"DNA|uint8"``, ``"DNA|uint16"``): a 12-bit camera's uint16 files and 8-bit files of one stain cannot
    share one range (the 12-bit images reached the model at ~0.03); a warning names such stains.
    """
    rng = np.random.default_rng(seed)
    index = [(k, i) for k, d in enumerate(datasets) for i in range(len(d))]
    if not index:
        return {}
    pick = rng.choice(len(index), size=min(max_images, len(index)), replace=False)
    samples: dict[str, list[np.ndarray]] = defaultdict(list)
    by_dtype: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for j in sorted(pick.tolist()):
        k, i = index[j]
        arr = np.asarray(datasets[k].read(i))
        scale = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
        for name, plane in zip(datasets[k].channel_names(i), arr):
            flat = plane.reshape(-1)
            if flat.size > pixels_per_plane:
                flat = flat[rng.choice(flat.size, pixels_per_plane, replace=False)]
            samples[str(name)].append(flat.astype(np.float32) / scale)
            by_dtype[str(name)][arr.dtype.name].append(samples[str(name)][-1])
    out: ChannelStats = {}
    for name, parts in samples.items():
        if (pair := _percentiles(np.concatenate(parts), low, high)) is not None:
            out[name] = pair
    mixed = {n: d for n, d in by_dtype.items() if len(d) > 1}
    if mixed:
        log.warning("channel(s) %s come in several dtypes (%s); their statistics are kept per dtype as well",
                    sorted(mixed), "; ".join(f"{n}: {', '.join(sorted(d))}" for n, d in sorted(mixed.items())))
    for name, dtypes in mixed.items():
        for dt, parts in dtypes.items():
            out[stats_key(name, dt)] = _percentiles(np.concatenate(parts), low, high) or out.get(name, [0.0, 1.0])
    every = _percentiles(np.concatenate([np.concatenate(p) for p in samples.values()]), low, high)
    if every is not None:
        out[ALL_CHANNELS] = every
    return out


def _percentiles(v: np.ndarray, low: float, high: float) -> list[float] | None:
    v = v[np.isfinite(v)]
    return [float(x) for x in np.percentile(v, [low, high])] if v.size else None
