import numpy as np
import pytest
import torch

from chadavit.data.normalize import normalize_planes


def test_dtype_range_matches_official_pixels_over_255():
    img = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = normalize_planes(img, "dtype_range")
    torch.testing.assert_close(out, torch.from_numpy(img.astype(np.float32) / 255.0))
    assert normalize_planes(np.full((1, 4, 4), 65535, np.uint16), "dtype_range").max() == 1.0


def test_percentile_scaling_is_per_channel_and_dtype_agnostic():
    rng = np.random.default_rng(0)
    dim = rng.integers(100, 200, (64, 64))  # a dim 12-bit channel
    bright = rng.integers(2000, 4000, (64, 64))
    img = np.stack([dim, bright]).astype(np.uint16)
    out = normalize_planes(img, "percentile")
    assert out.min() == 0 and out.max() == 1
    for c in range(2):  # each channel spans [0, 1] on its own
        assert out[c].quantile(0.5) == pytest.approx(0.5, abs=0.05)
    out8 = normalize_planes((img // 16).astype(np.uint8), "percentile")
    # the same picture in uint8 (the dim channel quantised to 7 levels) gives about the same input
    assert (out8 - out).abs().mean() < 0.04


def test_percentile_is_robust_to_hot_pixels_and_constant_planes():
    img = np.full((2, 64, 64), 10, np.uint16)
    img[0, :32] = 20
    img[0, 0, 0] = 65535  # one hot pixel
    out = normalize_planes(img, "percentile")
    assert out[0, 40].max() == 0 and out[0, 10, 10] == 1
    assert (out[1] == 0).all()  # constant plane


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize_planes(np.zeros((1, 2, 2)), "zscore")
