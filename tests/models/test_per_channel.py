"""``EncoderOutput.per_channel``: one compact vector per channel, keyed by channel name."""

from __future__ import annotations

import torch

from chadavit import ChannelBatch

from .helpers import random_images, small_model


def test_per_channel_is_the_mean_patch_token_of_each_channel_keyed_by_name() -> None:
    model = small_model()
    imgs = random_images([3, 1, 2], seed=4)
    names = [("DNA", "Actin", "Tubulin"), ("DNA",), ("Actin", "DNA")]
    with torch.no_grad():
        out = model(ChannelBatch.from_images(imgs, channel_names=names))
    pcs = out.per_channel()
    assert [tuple(p.shape) for p in pcs] == [(3, 64), (1, 64), (2, 64)]
    for p, t in zip(pcs, out.patch_tokens):
        torch.testing.assert_close(p, t.mean(dim=(1, 2)))
        torch.testing.assert_close(p.mean(0), t.mean(dim=(0, 1, 2)))
    named = out.per_channel_by_name()
    assert [list(d) for d in named] == [list(n) for n in names]
    torch.testing.assert_close(named[2]["DNA"], pcs[2][1])
    # an image's vectors do not depend on the other images of the batch (packing, count-sorted order)
    with torch.no_grad():
        alone = model(ChannelBatch.from_images([imgs[2]], channel_names=[names[2]])).per_channel_by_name()[0]
    for k in alone:
        torch.testing.assert_close(alone[k], named[2][k], atol=1e-5, rtol=1e-5)


def test_unnamed_channels_and_a_fixed_channel_stem() -> None:
    model = small_model()
    with torch.no_grad():
        out = model(ChannelBatch.from_images(random_images([2])))
    assert list(out.per_channel_by_name()[0]) == ["ch0", "ch1"]
    fixed = small_model("fixed_channel_vit_tiny", in_chans=2, depth=1)
    with torch.no_grad():
        out = fixed(ChannelBatch.from_images(random_images([2]), channel_names=[("DNA", "Actin")]))
    named = out.per_channel_by_name()[0]
    assert list(named) == ["all"]  # the stem mixed the channels: no per-channel vector to give
