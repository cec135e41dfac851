"""Pretraining and evaluation loaders that build :class:`~chadavit.ChannelBatch` es from chadavit datasets.

Design choices (why):

- The batch sampler yields ``(epoch, index)`` pairs and every random draw of an image's augmentation
  comes from a generator seeded with ``(seed, epoch, index)``. Data order and augmentations therefore
  do not depend on worker count or on where a run was resumed: resume is exact.
- Every rank of a distributed run gets the same number of steps (the epoch permutation is cut to a
  multiple of ``batch_size * world_size``), so no rank waits forever in a collective.
- An unreadable or corrupt image never kills a run: it is replaced by the next readable image and
  reported in the batch (``skipped``) so the trainer can count and log it.
- This module sits above ``chadavit.data`` and ``chadavit.batch`` (it was ``chadavit.data.loader``, which made
  ``data -> batch -> data`` a cycle).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from chadavit.batch import ChannelBatch
from chadavit.data.augment import MultiCrop
from chadavit.data.dataset import ChannelDataset
from chadavit.data.loader import (
    MAX_REPLACEMENTS,
    ConcatChannelDataset,
    ImageDataset,
    as_concat,
    read_normalized,
    sample_generator,
    worker_init,
)
from chadavit.data.normalize import ChannelStats, NormalizationMethod, check_method

log = logging.getLogger(__name__)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Shuffled, rank-sharded batches of ``(epoch, index)``; the same number of steps on every rank.

    Epoch ``e`` uses the permutation seeded by ``(seed, e)``, cut to ``steps_per_epoch *
    batch_size * world_size`` images; rank ``r`` takes every ``world_size``-th batch-sized slice.
    ``set_epoch(e, start_step)`` resumes in the middle of an epoch.
    """

    def __init__(self, n: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True) -> None:
        if n < batch_size * world_size:
            raise ValueError(f"the dataset has {n} images, fewer than one global batch "
                             f"(batch_size {batch_size} x {world_size} processes); lower data.batch_size")
        self.n, self.batch_size, self.world_size, self.rank = n, batch_size, world_size, rank
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start_step = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = int(epoch), int(start_step)

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch, 97]).permutation(self.n)
        else:
            perm = np.arange(self.n)
        gb = self.batch_size * self.world_size
        for step in range(self.start_step, self.steps_per_epoch):
            chunk = perm[step * gb : (step + 1) * gb]
            mine = chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            yield [(self.epoch, int(i)) for i in mine]


@dataclass
class MultiCropBatch:
    """One pretraining step's input: view-major global and local crops.

    ``global_crops`` holds ``2 * B`` images (all images' first global crop, then all second ones);
    ``local_crops`` holds ``n_local * B`` images in the same order (``None`` without local crops).
    """

    global_crops: ChannelBatch
    local_crops: ChannelBatch | None
    batch_size: int
    indices: torch.Tensor
    skipped: list[str] = field(default_factory=list)

    def pin_memory(self) -> MultiCropBatch:
        return MultiCropBatch(self.global_crops.pin_memory(),
                              self.local_crops.pin_memory() if self.local_crops is not None else None,
                              self.batch_size, self.indices, self.skipped)


class MultiCropDataset(Dataset):
    """Multi-crop views of every image; indexed by ``(epoch, index)`` from :class:`EpochBatchSampler`."""

    def __init__(self, datasets: ChannelDataset | Sequence[ChannelDataset] | ConcatChannelDataset,
                 transform: MultiCrop, seed: int = 0, normalization: NormalizationMethod = "percentile",
                 preload_mb: float = 0.0, stats: ChannelStats | None = None) -> None:
        check_method(normalization)
        self.stats = stats
        self.ds = as_concat(datasets, preload_mb)
        self.transform = transform
        self.seed = seed
        self.normalization = normalization

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, int(key))
        skipped: list[str] = []
        for attempt in range(MAX_REPLACEMENTS):
            i = (index + attempt) % len(self.ds)
            try:
                x = read_normalized(self.ds, i, self.normalization, self.stats)
                names = self.ds.channel_names(i)
                if len(names) != x.shape[0]:
                    raise ValueError(f"{x.shape[0]} planes but {len(names)} channel names")
            except Exception as exc:  # noqa: BLE001 - any corrupt image is skipped, never fatal
                skipped.append(f"{self._id(i)}: {type(exc).__name__}: {exc}")
                continue
            g = sample_generator(self.seed, epoch, index)
            glob, loc, names = self.transform(x, names, g)
            return {"index": index, "global": glob, "local": loc, "names": tuple(names),
                    "source": self._id(i), "skipped": skipped}
        raise RuntimeError(f"{MAX_REPLACEMENTS} consecutive images from index {index} are unreadable: {skipped}")

    def _id(self, i: int) -> str:
        try:
            return self.ds.image_id(i)
        except Exception:  # noqa: BLE001
            return f"#{i}"


def collate_multicrop(items: Sequence[dict]) -> MultiCropBatch:
    """Stack the crops of ``items`` view-major into one global and one local :class:`ChannelBatch`."""
    names = tuple(it["names"] for it in items)
    sources = tuple(it["source"] for it in items)
    counts = [len(n) for n in names]

    def pack(key: str) -> ChannelBatch | None:
        n_views = len(items[0][key])
        if n_views == 0:
            return None
        planes = [items[b][key][v] for v in range(n_views) for b in range(len(items))]
        return ChannelBatch(planes=torch.cat(planes, 0), num_channels=torch.tensor(counts * n_views),
                            channel_names=names * n_views, sources=sources * n_views)

    return MultiCropBatch(global_crops=pack("global"), local_crops=pack("local"), batch_size=len(items),
                          indices=torch.tensor([it["index"] for it in items]),
                          skipped=[s for it in items for s in it["skipped"]])




def make_pretrain_loader(dataset: MultiCropDataset, sampler: EpochBatchSampler, num_workers: int = 2,
                         pin_memory: bool = False, prefetch_factor: int = 4) -> DataLoader:
    """A DataLoader over ``dataset`` driven by ``sampler`` (call ``sampler.set_epoch`` before iterating)."""
    # persistent workers keep their open stores and preloaded arrays across epochs (the sampler runs in the main
    # process, so set_epoch still takes effect)
    kwargs = {"prefetch_factor": prefetch_factor, "persistent_workers": True} if num_workers > 0 else {}
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_multicrop,
                      pin_memory=pin_memory, worker_init_fn=worker_init if num_workers > 0 else None, **kwargs)


def collate_images(items: Sequence[dict]) -> ChannelBatch:
    """Already-normalised images of one size into a :class:`ChannelBatch`."""
    return ChannelBatch(planes=torch.cat([it["planes"] for it in items], 0),
                        num_channels=torch.tensor([it["planes"].shape[0] for it in items]),
                        channel_names=tuple(it["names"] for it in items),
                        sources=tuple(it["source"] for it in items))


def make_image_loader(datasets: ChannelDataset | Sequence[ChannelDataset] | ConcatChannelDataset,
                      batch_size: int = 64, normalization: NormalizationMethod = "percentile",
                      size: int | None = None, num_workers: int = 0) -> DataLoader:
    """In-order loader of whole images as ChannelBatches (all images must share a size unless ``size``)."""
    return DataLoader(ImageDataset(datasets, normalization, size), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, collate_fn=collate_images,
                      worker_init_fn=worker_init if num_workers > 0 else None)
