import pytest
import torch

from chadavit import ChannelBatch
from chadavit.models import create_model, list_models
from tests.models.helpers import random_batch, random_images, small_model

ALL = list_models()
FIXED = {"fixed_channel_vit_tiny"}


def test_presets_registered():
    for name in ("chada_vit_tiny", "chada_vit_small", "chada_vit_moyen", "chada_vit_base", "one_channel_vit_tiny",
                 "inter_channel_vit_moyen", "fixed_channel_vit_tiny"):
        assert name in ALL


@pytest.mark.parametrize(
    ("name", "params"),
    [("chada_vit_moyen", 11_341_632), ("one_channel_vit_tiny", 5_426_112), ("fixed_channel_vit_tiny", 5_524_416)],
)
def test_parameter_counts_match_reference_models(name, params):
    # official ChAda-ViT Moyen and timm ViT-Ti/16 with 1 and 3 input channels
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("name", ALL)
def test_output_shapes(name):
    model = small_model(name, embed_dim=48, num_heads=4, mlp_dim=64)
    counts = [3, 3] if name in FIXED else [1, 4, 2]
    batch = random_batch(counts, size=48)
    out = model(batch, return_attention=True)
    assert out.cls.shape == (len(counts), model.embed_dim)
    assert torch.isfinite(out.cls).all()
    assert len(out.patch_tokens) == len(out.attentions) == len(counts)
    for c, tokens, attn in zip(counts, out.patch_tokens, out.attentions):
        assert tokens.shape[-1] == 48
        assert attn.shape[0] == 4
        if name.startswith("inter_channel"):
            assert tokens.shape == (c, 1, 1, 48)
        elif name in FIXED:
            assert tokens.shape == (1, 3, 3, 48)
        else:
            assert tokens.shape == (c, 3, 3, 48)
            assert attn.shape == (4, c, 3, 3)
        assert (attn >= 0).all()
        if name.startswith("chada"):  # CLS attention over patches: a distribution less the CLS self-weight
            total = attn.sum(dim=(1, 2, 3))
            assert ((total > 0) & (total <= 1 + 1e-5)).all()


def test_one_channel_vit_concat_pooling():
    model = small_model("one_channel_vit_tiny", embed_dim=48, num_heads=4, mlp_dim=64, pooling="concat")
    out = model(random_batch([2, 2]))
    assert out.cls.shape == (2, 96)
    with pytest.raises(ValueError, match="one channel count"):
        model(random_batch([2, 3]))


def test_one_channel_vit_has_no_channel_interaction():
    model = small_model("one_channel_vit_tiny", embed_dim=48, num_heads=4, mlp_dim=64)
    image = random_images([2])[0]
    both = model(ChannelBatch.from_images([image]))
    first_alone = model(ChannelBatch.from_images([image[:1]]))
    torch.testing.assert_close(both.patch_tokens[0][0], first_alone.patch_tokens[0][0], atol=1e-5, rtol=0)


def test_position_embedding_interpolates_to_other_sizes():
    model = small_model()
    for size in (32, 64, 48):
        out = model(random_batch([2], size=size))
        assert out.patch_tokens[0].shape[1:3] == (size // 16, size // 16)
