import numpy as np
import pytest
import torch

from chadavit import ChannelBatch, InvalidImageError


def make(counts, size=8):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 65535, (c, size, size)).astype(np.uint16) for c in counts]


def test_planes_are_stacked_without_padding():
    batch = ChannelBatch.from_images(make([1, 3, 2]), normalize="none")
    assert batch.planes.shape == (6, 8, 8)
    assert batch.num_channels.tolist() == [1, 3, 2]
    assert batch.offsets.tolist() == [0, 1, 4, 6]
    assert batch.plane_slots.tolist() == [0, 0, 1, 2, 0, 1]
    assert batch.image_index.tolist() == [0, 1, 1, 1, 2, 2]
    assert [im.shape[0] for im in batch.images()] == [1, 3, 2]


def test_mixed_input_dtypes_and_2d_arrays():
    images = [np.zeros((8, 8), np.uint8), np.ones((2, 8, 8), np.float32), torch.ones(3, 8, 8)]
    batch = ChannelBatch.from_images(images)
    assert batch.num_channels.tolist() == [1, 2, 3]
    assert batch.planes.dtype == torch.float32


def test_select_concat_and_channel_names():
    names = [("DNA",), ("DNA", "Actin", "Tub"), ("a", "b")]
    batch = ChannelBatch.from_images(make([1, 3, 2]), channel_names=names, sources=["x", "y", "z"])
    sub = batch.select([2, 0])
    assert sub.num_channels.tolist() == [2, 1] and sub.channel_names == (("a", "b"), ("DNA",))
    assert sub.sources == ("z", "x")
    torch.testing.assert_close(sub.image(0), batch.image(2))
    joined = ChannelBatch.concat([sub, batch])
    assert len(joined) == 5 and joined.channel_names[2] == ("DNA",)


def test_channel_names_must_match_counts():
    with pytest.raises(InvalidImageError, match="image 0 has 2 channels but 1 channel names"):
        ChannelBatch.from_images(make([2]), channel_names=[["DNA"]])


def test_padded_copy_and_mask():
    batch = ChannelBatch.from_images(make([1, 3]))
    dense, mask = batch.padded(4)
    assert dense.shape == (2, 4, 8, 8)
    assert mask.tolist() == [[True, False, False, False], [True, True, True, False]]
    assert dense[0, 1:].abs().sum() == 0


def test_num_channels_must_sum_to_planes():
    with pytest.raises(InvalidImageError, match="sums to"):
        ChannelBatch(torch.zeros(3, 8, 8), torch.tensor([1, 1]))
