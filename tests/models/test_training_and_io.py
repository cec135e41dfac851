import pytest
import torch

from chadavit import ChannelBatch, create_model
from chadavit.models import CheckpointError, list_models, load_pretrained, save_pretrained
from tests.models.helpers import random_batch, random_images, small_model


@pytest.mark.parametrize("name", list_models())
def test_gradient_reaches_every_trainable_parameter(name):
    identity = name.startswith("chada_vit") and name.endswith("nano")
    overrides = {"embed_dim": 32, "num_heads": 4, "mlp_dim": 64}
    if identity:
        overrides.update(channel_embedding="identity", channel_vocab=["DNA", "Actin", "Tubulin"])
    model = small_model(name, **overrides).train()
    counts = [3, 3] if name.startswith("fixed") else [1, 3, 2]
    batch = random_batch(counts)
    if identity:
        names = [("DNA", "Actin", "Tubulin")[:c] for c in counts]
        batch = ChannelBatch(batch.planes, batch.num_channels, channel_names=names)
    out = model(batch)
    loss = out.cls.pow(2).sum() + sum(t.pow(2).sum() for t in out.patch_tokens)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    if not name.startswith("fixed") and not name.startswith("chada"):
        no_grad = [n for n in no_grad if not n.startswith("channel_embed")]
    if identity:  # the <unknown> row only receives gradient from unknown names
        no_grad = [n for n in no_grad if n != "channel_embed.weight"]
        assert model.channel_embed.weight.grad[1:4].abs().sum() > 0
    assert no_grad == []


def test_gradient_checkpointing_gives_the_same_gradients():
    batch = random_batch([2, 3])
    grads = []
    for ckpt in (False, True):
        model = small_model().train()
        model.set_grad_checkpointing(ckpt)
        model(batch).cls.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["chada_vit_nano", "one_channel_vit_tiny", "inter_channel_vit_moyen"])
def test_save_load_round_trip(tmp_path, name):
    extra = {"channel_embedding": "identity", "channel_vocab": ["DNA", "Actin"]} if name == "chada_vit_nano" else {}
    model = small_model(name, embed_dim=32, num_heads=4, mlp_dim=64, **extra)
    save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_pretrained(tmp_path / "m")
    again = create_model("ignored", pretrained=tmp_path / "m")
    assert loaded.config == model.config
    batch = random_batch([2, 1])
    if name == "chada_vit_nano":
        batch = ChannelBatch(batch.planes, batch.num_channels, channel_names=[("DNA", "Actin"), ("Actin",)])
        assert loaded.channel_embed.vocab == ["DNA", "Actin"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).cls, model(batch).cls)
        torch.testing.assert_close(again(batch).cls, model(batch).cls)


def test_loading_weights_of_another_architecture_names_the_keys(tmp_path):
    save_pretrained(small_model(depth=2), tmp_path / "m")
    cfg = (tmp_path / "m" / "config.json").read_text().replace('"depth": 2', '"depth": 3')
    (tmp_path / "m" / "config.json").write_text(cfg)
    with pytest.raises(CheckpointError, match=r"missing keys \['blocks\.2\."):
        load_pretrained(tmp_path / "m")


def test_unknown_config_key_lists_valid_keys():
    with pytest.raises(ValueError, match="valid keys"):
        create_model("chada_vit_nano", deepth=3)
    with pytest.raises(KeyError, match="available"):
        create_model("chada_vit_huge")


def test_images_embed_in_float32_from_any_input_dtype():
    model = small_model()
    for dtype in ("uint8", "uint16"):
        out = model(ChannelBatch.from_images(random_images([2], dtype=dtype)))
        assert out.cls.dtype == torch.float32
