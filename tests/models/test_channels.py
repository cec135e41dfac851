"""Channel limits and channel identity."""

import logging

import pytest
import torch

from chadavit import ChannelBatch, InvalidImageError
from tests.models.helpers import random_images, small_model


def test_slot_embeddings_refuse_more_channels_than_slots():
    model = small_model()
    with pytest.raises(InvalidImageError, match=r"image 1 .*11 channels but this model has 10 channel slots"):
        model(ChannelBatch.from_images(random_images([2, 11])))
    model(ChannelBatch.from_images(random_images([10])))


def test_more_slots_on_request():
    model = small_model(num_slots=16)
    assert model(ChannelBatch.from_images(random_images([16]))).patch_tokens[0].shape[0] == 16


def test_identity_embeddings_take_any_channel_count_and_unknown_names(caplog):
    vocab = ["DNA", "Actin", "Tubulin", "Mito"]
    model = small_model(channel_embedding="identity", channel_vocab=vocab)
    names = [f"stain{k}" for k in range(12)] + ["DNA", "actin", "Tubulin", "Mito"]
    batch = ChannelBatch.from_images(random_images([16]), channel_names=[names])
    with caplog.at_level(logging.WARNING):
        out = model(batch)
    assert out.patch_tokens[0].shape[0] == 16
    assert "stain0" in caplog.text  # the unknown names are reported
    ids = model.channel_embed.lookup(names)
    assert (ids[:12] == 0).all()  # fallback: the learned <unknown> vector
    assert ids[12:].tolist() == [1, 2, 3, 4]  # case-insensitive lookup


def test_identity_embedding_makes_channel_order_irrelevant_in_meaning():
    model = small_model(channel_embedding="identity", channel_vocab=["DNA", "Actin"])
    img = random_images([2])[0]
    a = model(ChannelBatch.from_images([img], channel_names=[["DNA", "Actin"]])).cls
    b = model(ChannelBatch.from_images([img[::-1].copy()], channel_names=[["Actin", "DNA"]])).cls
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)  # same set of (plane, name) pairs, permuted


def test_identity_model_needs_channel_names():
    model = small_model(channel_embedding="identity", channel_vocab=["DNA"])
    with pytest.raises(InvalidImageError, match="needs channel names"):
        model(ChannelBatch.from_images(random_images([1])))
