"""DataLoader layer: ChannelBatch collation, equal steps per rank, exact (epoch, index) randomness, bad images."""

from __future__ import annotations

import numpy as np
import torch

from chadavit.batch import ChannelBatch
from chadavit.data.augment import AugmentConfig, MultiCrop
from chadavit.data.dataset import DatasetWriter, open_dataset
from chadavit.data.synthetic import write_synthetic_dataset
from chadavit.pretrain.loader import (
    EpochBatchSampler,
    MultiCropDataset,
    collate_multicrop,
    make_image_loader,
    make_pretrain_loader,
)


def _dataset(tmp_path):
    return open_dataset(write_synthetic_dataset(tmp_path / "syn", studies=[("DNA",), ("DNA", "protein", "ER")],
                                                images_per_study=6, size=32))


def test_sampler_same_steps_every_rank_disjoint():
    samplers = [EpochBatchSampler(23, 4, world_size=2, rank=r, seed=1) for r in range(2)]
    for s in samplers:
        s.set_epoch(3)
    batches = [list(s) for s in samplers]
    assert len(batches[0]) == len(batches[1]) == 2
    idx = [i for b in batches for batch in b for _, i in batch]
    assert len(idx) == len(set(idx)) == 16
    s = samplers[0]
    s.set_epoch(3, start_step=1)
    assert list(s) == batches[0][1:]
    s.set_epoch(4)
    assert list(s) != batches[0]


def test_multicrop_batches_mix_channel_counts(tmp_path):
    ds = _dataset(tmp_path)
    mcd = MultiCropDataset(ds, MultiCrop(AugmentConfig(global_size=32, local_size=16, n_local=2)), seed=0)
    sampler = EpochBatchSampler(len(mcd), 6, seed=0)
    batch = next(iter(make_pretrain_loader(mcd, sampler, num_workers=0)))
    g, loc = batch.global_crops, batch.local_crops
    assert isinstance(g, ChannelBatch) and len(g) == 12 and g.image_size == (32, 32)
    assert len(loc) == 12 and loc.image_size == (16, 16)
    assert set(g.num_channels.tolist()) <= {1, 3}
    # view-major: both global views of image b have the same channels
    assert g.num_channels[:6].tolist() == g.num_channels[6:].tolist()
    assert g.channel_names[:6] == g.channel_names[6:]
    assert g.planes.dtype == torch.float32 and 0 <= float(g.planes.min()) and float(g.planes.max()) <= 1


def test_same_batch_with_and_without_workers(tmp_path):
    ds = _dataset(tmp_path)
    mcd = MultiCropDataset(ds, MultiCrop(AugmentConfig(global_size=32, local_size=16, n_local=1)), seed=3)
    out = []
    for workers in (0, 2):
        sampler = EpochBatchSampler(len(mcd), 4, seed=3)
        sampler.set_epoch(2, start_step=1)
        out.append(next(iter(make_pretrain_loader(mcd, sampler, num_workers=workers))))
    assert torch.equal(out[0].global_crops.planes, out[1].global_crops.planes)
    assert torch.equal(out[0].local_crops.planes, out[1].local_crops.planes)


def test_corrupt_image_is_skipped_and_reported(tmp_path):
    path = tmp_path / "ds"
    with DatasetWriter(path) as w:
        for i in range(4):
            w.add(np.random.default_rng(i).integers(0, 4000, (2, 24, 24), dtype=np.uint16), f"img{i}", ["a", "b"])
        w.add(np.full((1, 24, 24), np.nan, dtype=np.float32), "nan-image", ["a"])
    ds = open_dataset(path)
    mcd = MultiCropDataset(ds, MultiCrop(AugmentConfig(global_size=16, local_size=8, n_local=0)))
    item = mcd[(0, 4)]  # the NaN image is replaced by the next readable one
    assert item["skipped"] and "nan-image" in item["skipped"][0]
    batch = collate_multicrop([mcd[(0, i)] for i in range(5)])
    assert len(batch.skipped) == 1 and len(batch.global_crops) == 10 and batch.local_crops is None


def test_image_loader_uses_normalization(tmp_path):
    ds = _dataset(tmp_path)
    batch = next(iter(make_image_loader(ds, batch_size=8, size=24)))
    assert len(batch) == 8 and batch.image_size == (24, 24)
    ref = ChannelBatch.from_images([ds.read(0)])
    direct = next(iter(make_image_loader(ds, batch_size=1)))
    assert torch.allclose(direct.planes, ref.planes)


def test_preloaded_reads_equal_store_reads(tmp_path):
    from chadavit.data.loader import ConcatChannelDataset

    ds = _dataset(tmp_path)
    cached = ConcatChannelDataset([ds], preload_mb=64)
    lazy = ConcatChannelDataset([ds], preload_mb=0)
    for i in range(len(ds)):
        np.testing.assert_array_equal(cached.read(i), ds.read(i))
        np.testing.assert_array_equal(lazy.read(i), ds.read(i))
    assert isinstance(next(iter(cached._arrays.values())), np.ndarray)
