import numpy as np
import pytest

from chadavit import ChannelBatch, InvalidImageError
from tests.models.helpers import random_images, small_model


def test_zero_channels():
    with pytest.raises(InvalidImageError, match="image 1 .*zero channels"):
        ChannelBatch.from_images([np.zeros((1, 32, 32), np.uint8), np.zeros((0, 32, 32), np.uint8)])


def test_smaller_than_one_patch():
    model = small_model()
    with pytest.raises(InvalidImageError, match="smaller than one 16x16 patch"):
        model(ChannelBatch.from_images([np.ones((2, 8, 40), np.uint8)]))


def test_mixed_sizes_in_one_batch():
    with pytest.raises(InvalidImageError, match=r"image 1 \(b.tif\) is 48x48 but image 0 is 32x32"):
        ChannelBatch.from_images([np.ones((1, 32, 32), np.uint8), np.ones((1, 48, 48), np.uint8)],
                                 sources=["a.tif", "b.tif"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_pixels(bad):
    img = np.ones((3, 32, 32), np.float32)
    img[2, 5, 5] = bad
    with pytest.raises(InvalidImageError, match=r"image 0 .*NaN or Inf pixels in channel\(s\) \[2\]"):
        ChannelBatch.from_images([img])


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex64, np.uint32])
def test_unsupported_dtype(dtype):
    with pytest.raises(InvalidImageError, match="unsupported dtype"):
        ChannelBatch.from_images([np.ones((1, 32, 32), dtype)])


def test_more_channels_than_slots():
    with pytest.raises(InvalidImageError, match="12 channels but this model has 10 channel slots"):
        small_model()(ChannelBatch.from_images(random_images([12])))


def test_fixed_channel_vit_names_the_wrong_image():
    model = small_model("fixed_channel_vit_tiny", embed_dim=32, num_heads=4, mlp_dim=64)
    with pytest.raises(InvalidImageError, match="image 1 has 2 channels; this fixed-channel ViT takes exactly 3"):
        model(ChannelBatch.from_images(random_images([3, 2])))
