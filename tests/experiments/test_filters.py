"""Dataset filters: channel count, channel names, one image per channel; wired into pretraining data."""

from __future__ import annotations

import numpy as np
import pytest

from chadavit.data.dataset import DatasetError, open_dataset
from chadavit.data.filters import apply_filters, filter_dataset, split_channels
from chadavit.pretrain.data import builtin_demo_path


@pytest.fixture(scope="module")
def demo():
    return open_dataset(builtin_demo_path())


def test_filter_by_channel_count(demo):
    counts = demo.manifest["n_channels"]
    three = filter_dataset(demo, n_channels=3)
    assert len(three) == int((counts == 3).sum()) > 0
    assert set(three.manifest["n_channels"]) == {3}
    first = int(np.flatnonzero(counts == 3)[0])
    assert np.array_equal(three.read(0), demo.read(first))
    both = filter_dataset(demo, n_channels=[1, 3])
    assert len(both) == int(counts.isin([1, 3]).sum())
    assert len(filter_dataset(demo)) == len(demo)


def test_filter_by_channel_names_is_exact_ordered_and_case_insensitive(demo):
    got = filter_dataset(demo, channel_names=["dna", "PROTEIN"])
    assert len(got) > 0
    assert all([n.lower() for n in names] == ["dna", "protein"] for names in got.manifest["channel_names"])
    assert len(filter_dataset(demo, channel_names=["protein", "DNA"])) == 0  # order matters (slot models)
    assert len(filter_dataset(demo, n_channels=3, channel_names=["DNA", "protein"])) == 0


def test_split_channels_gives_every_plane_once(demo):
    small = demo.subset(np.arange(len(demo)) < 12)
    split = split_channels(small)
    assert len(split) == int(small.manifest["n_channels"].sum())
    assert set(split.manifest["n_channels"]) == {1}
    j = 0
    for i in range(len(small)):
        img, names = small.read(i), small.channel_names(i)
        for k in range(img.shape[0]):
            assert np.array_equal(split.read(j)[0], img[k])
            assert split.channel_names(j) == [names[k]]
            assert split.manifest.iloc[j]["image_id"] == f"{small.manifest.iloc[i]['image_id']}#c{k}"
            j += 1


def test_apply_filters_drops_empty_and_explains_when_nothing_is_left(demo):
    out = apply_filters([demo, filter_dataset(demo, n_channels=1)], n_channels=[2])
    assert len(out) == 1 and set(out[0].manifest["n_channels"]) == {2}
    with pytest.raises(DatasetError, match=r"keeps no image.*3 ch: \d+ images"):
        apply_filters([demo], n_channels=[7])
