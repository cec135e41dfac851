"""Augmentations keep channel counts and dtypes, are deterministic per generator, and need no RGB."""

from __future__ import annotations

import pytest
import torch

from chadavit.data.augment import (
    AugmentConfig,
    MultiCrop,
    channel_jitter,
    gaussian_blur,
    gaussian_noise,
    random_flip_rot90,
    random_resized_crop,
    subsample_channels,
)


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("c", [1, 3, 7, 10])
def test_transforms_keep_channels_and_float_dtype(c):
    x = torch.rand(c, 40, 52)
    assert random_resized_crop(x, 24, g()).shape == (c, 24, 24)
    assert random_flip_rot90(x[:, :40, :40], g()).shape == (c, 40, 40)
    for fn in (channel_jitter, gaussian_noise):
        y = fn(x, g(), p=1.0)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert 0 <= float(y.min()) and float(y.max()) <= 1
    y = gaussian_blur(x, g(), p=1.0)
    assert y.shape == x.shape and y.dtype == x.dtype


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.float64])
def test_geometric_transforms_keep_any_dtype(dtype):
    x = (torch.rand(4, 32, 32) * 200).to(dtype)
    y = random_resized_crop(x, 16, g(1))
    assert y.dtype == dtype and y.shape == (4, 16, 16)
    assert random_flip_rot90(x, g(2)).dtype == dtype


def test_blur_smooths_and_jitter_is_per_channel():
    x = torch.zeros(2, 21, 21)
    x[:, 10, 10] = 1.0
    y = gaussian_blur(x, g(), sigma=(1.0, 1.0), p=1.0)
    assert float(y[0, 10, 10]) < 0.5 and abs(float(y.sum()) - 2.0) < 1e-3
    flat = torch.full((6, 8, 8), 0.5)
    j = channel_jitter(flat, g(3), brightness=0.5, contrast=0.0, p=1.0)
    assert len({round(float(v), 5) for v in j[:, 0, 0]}) > 1  # each channel gets its own factor


def test_flip_rot90_is_a_symmetry():
    x = torch.arange(16.0).view(1, 4, 4)
    y = random_flip_rot90(x, g(5))
    assert sorted(y.flatten().tolist()) == sorted(x.flatten().tolist())


def test_subsample_channels_non_empty_subset():
    names = ["DNA", "ER", "protein", "actin"]
    seen = set()
    for s in range(50):
        keep = subsample_channels(names, g(s), p=1.0)
        assert 1 <= len(keep) <= 4 and keep == sorted(set(keep))
        seen.add(len(keep))
    assert len(seen) > 1
    assert subsample_channels(["DNA"], g(), p=1.0) == [0]
    assert subsample_channels(names, g(), p=0.0) == [0, 1, 2, 3]


def test_multicrop_views_share_channels_and_are_deterministic():
    cfg = AugmentConfig(global_size=32, local_size=16, n_local=3, channel_subsample_p=1.0)
    mc = MultiCrop(cfg)
    x = torch.rand(5, 48, 48)
    names = ["a", "b", "c", "d", "e"]
    glob, loc, kept = mc(x, names, g(7))
    assert len(glob) == 2 and len(loc) == 3
    assert all(v.shape == (len(kept), 32, 32) for v in glob)
    assert all(v.shape == (len(kept), 16, 16) for v in loc)
    assert set(kept) <= set(names)
    glob2, loc2, kept2 = mc(x, names, g(7))
    assert kept2 == kept and all(torch.equal(a, b) for a, b in zip(glob + loc, glob2 + loc2))
    assert not torch.equal(glob[0], glob[1])
