"""Reading layer over chadavit datasets: several datasets as one, normalised reads, per-image seeds.

The loaders that build :class:`~chadavit.ChannelBatch` es live in :mod:`chadavit.pretrain.loader` (imports run
one way: ``data`` <- ``batch`` <- ``pretrain``; this module never imports the batch type).

Design choices (why):

- Raw pixels are scaled once, by :func:`chadavit.data.normalize.normalize_planes` (the one place).
- The Zarr store is opened lazily per worker process (see :class:`ChannelDataset`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from chadavit.data.dataset import ChannelDataset, check_image
from chadavit.data.normalize import ChannelStats, NormalizationMethod, check_method, match_stats, normalize_planes

log = logging.getLogger(__name__)

MAX_REPLACEMENTS = 16


class ConcatChannelDataset:
    """Several :class:`ChannelDataset` s read as one (``read``, ``channel_names``, ``image_id``, ``len``).

    Why the caching: opening a Zarr array costs about as much as reading a small image, so array handles
    are kept per process; datasets whose planes total at most ``preload_mb`` are read into memory once per
    process (worker) on first use, which makes small (demo, test) datasets several times faster to load.
    """

    def __init__(self, datasets: Sequence[ChannelDataset], preload_mb: float = 0.0) -> None:
        self.datasets = [d for d in datasets if len(d) > 0]
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        self.preload_mb = preload_mb
        self._arrays: dict[tuple[int, str], object] = {}
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"], state["_pid"] = {}, None
        return state

    def _array(self, k: int, name: str):  # noqa: ANN202 - zarr array or numpy array
        import os

        if self._pid != os.getpid():
            self._arrays, self._pid = {}, os.getpid()
        key = (k, name)
        if key not in self._arrays:
            d = self.datasets[k]
            arr = d._arrays()[name]  # noqa: SLF001 - the per-process lazily opened Zarr group
            nbytes = int(np.prod(arr.shape)) * np.dtype(arr.dtype).itemsize
            if nbytes <= self.preload_mb * 2**20:
                arr = np.asarray(arr[:])
            self._arrays[key] = arr
        return self._arrays[key]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, i: int) -> tuple[ChannelDataset, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"image index {i} out of range for {len(self)} images")
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.datasets[k], i - int(self.offsets[k])

    def read(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(f"image index {i} out of range for {len(self)} images")
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        row = self.datasets[k].manifest.iloc[i - int(self.offsets[k])]
        start = int(row["plane_offset"])
        arr = np.asarray(self._array(k, str(row["array"]))[start : start + int(row["n_channels"])])
        return check_image(arr, row, self.datasets[k].path)  # a damaged store is skipped, not trained on as zeros

    def channel_names(self, i: int) -> list[str]:
        d, j = self._locate(i)
        return d.channel_names(j)

    def image_id(self, i: int) -> str:
        d, j = self._locate(i)
        return str(d.manifest.iloc[j]["image_id"])

    def column(self, name: str) -> list:
        return [v for d in self.datasets
                for v in (d.manifest[name].tolist() if name in d.manifest else [None] * len(d))]


def as_concat(datasets: ChannelDataset | Sequence[ChannelDataset] | ConcatChannelDataset,
              preload_mb: float = 0.0) -> ConcatChannelDataset:
    if isinstance(datasets, ConcatChannelDataset):
        return datasets
    if isinstance(datasets, ChannelDataset):
        return ConcatChannelDataset([datasets], preload_mb)
    return ConcatChannelDataset(list(datasets), preload_mb)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator for one image's augmentations: a pure function of ``(seed, epoch, index)``."""
    ss = np.random.SeedSequence([int(seed), int(epoch), int(index)])
    return torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] & 0x7FFF_FFFF_FFFF_FFFF))


def read_normalized(ds: ConcatChannelDataset, i: int, method: NormalizationMethod,
                    stats: ChannelStats | None = None) -> torch.Tensor:
    """Image ``i`` as normalised float32 ``(C, H, W)``; raises on unreadable or non-finite images."""
    arr = ds.read(i)
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.size == 0:
        raise ValueError(f"image has unusable shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("image has NaN or Inf pixels")
    arr, st = match_stats(arr, ds.channel_names(i), stats) if method == "dataset" else (arr, None)
    return normalize_planes(arr, method, stats=st)


class ImageDataset(Dataset):
    """Whole images (optionally centre-cropped/resized to ``size``), normalised, for embedding and evaluation."""

    def __init__(self, datasets: ChannelDataset | Sequence[ChannelDataset] | ConcatChannelDataset,
                 normalization: NormalizationMethod = "percentile", size: int | None = None,
                 stats: ChannelStats | None = None) -> None:
        check_method(normalization)
        self.stats = stats
        self.ds = as_concat(datasets)
        self.normalization = normalization
        self.size = size

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        x = read_normalized(self.ds, i, self.normalization, self.stats)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            from chadavit.data.augment import _resize

            side = min(x.shape[-2:])
            top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
            x = _resize(x[:, top : top + side, left : left + side], (self.size, self.size))
        return {"index": i, "planes": x, "names": tuple(self.ds.channel_names(i)), "source": self.ds.image_id(i)}



def worker_init(_: int) -> None:
    """Loader workers run single-threaded: on small CPU boxes extra OpenMP threads only spin-wait."""
    torch.set_num_threads(1)
