"""No compute on padding: packed attention equals the padded reference, and images do not see each other."""

import numpy as np
import pytest
import torch

from chadavit import ChannelBatch
from tests.models.helpers import random_images, small_model


@pytest.mark.parametrize("name", ["chada_vit_nano", "one_channel_vit_tiny", "inter_channel_vit_moyen"])
def test_embedding_does_not_depend_on_batch_mates(name):
    model = small_model(name, embed_dim=64, num_heads=4, mlp_dim=128, depth=3)
    rng = np.random.default_rng(1)
    counts = [int(c) for c in rng.integers(1, 11, 9)]
    images = random_images(counts, seed=2)
    with torch.no_grad():
        alone = [model(ChannelBatch.from_images([im])).cls[0] for im in images]
        for trial in range(3):
            order = rng.permutation(len(images))[: rng.integers(2, len(images) + 1)]
            out = model(ChannelBatch.from_images([images[i] for i in order])).cls
            for row, i in zip(out, order):
                torch.testing.assert_close(row, alone[i], atol=1e-5, rtol=0)


def test_grouped_and_padded_attention_backends_agree():
    model = small_model(depth=3)
    batch = ChannelBatch.from_images(random_images([1, 3, 10, 2, 3, 7], seed=3))
    with torch.no_grad():
        results = {}
        for backend in ("grouped", "padded"):
            model.set_attention_backend(backend)
            results[backend] = model(batch)
    torch.testing.assert_close(results["grouped"].cls, results["padded"].cls, atol=1e-5, rtol=0)
    for a, b in zip(results["grouped"].patch_tokens, results["padded"].patch_tokens):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_packed_equals_padding_every_image_to_ten_slots():
    model = small_model(depth=3)
    batch = ChannelBatch.from_images(random_images([1, 3, 10, 2], seed=4))
    with torch.no_grad():
        packed = model(batch, return_attention=True)
        padded = model(batch, return_attention=True, pad_to_slots=10)
    torch.testing.assert_close(packed.cls, padded.cls, atol=1e-5, rtol=0)
    for a, b in zip(packed.patch_tokens, padded.patch_tokens):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for a, b in zip(packed.attentions, padded.attentions):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_padding_changes_nothing_but_a_zero_mask_would():
    # a padded plane that were NOT masked would change the result: the mask really matters
    model = small_model(depth=2)
    img = random_images([2], seed=5)[0]
    with_zero_plane = np.concatenate([img, np.zeros_like(img[:1])])
    with torch.no_grad():
        a = model(ChannelBatch.from_images([img])).cls
        b = model(ChannelBatch.from_images([with_zero_plane])).cls
    assert (a - b).abs().max() > 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="varlen attention needs CUDA (no GPU on this machine)")
def test_varlen_backend_matches_grouped_on_cuda():
    model = small_model(depth=2).cuda()
    batch = ChannelBatch.from_images(random_images([1, 3, 10, 2], seed=6)).to("cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        model.set_attention_backend("grouped")
        ref = model(batch).cls.float()
        model.set_attention_backend("varlen")
        got = model(batch).cls.float()
    torch.testing.assert_close(got, ref, atol=3e-2, rtol=0)
