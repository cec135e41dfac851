"""The recipe pieces of issue 20: KoLeo, masked-patch reconstruction, per-channel intensity augmentation."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from chadavit.batch import ChannelBatch
from chadavit.data.augment import AugmentConfig, MultiCrop, channel_intensity
from chadavit.pretrain.config import ConfigError, DinoConfig
from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.net import DinoNet
from chadavit.pretrain.objectives import (koleo_loss, mask_tiles, masked_reconstruction_loss, student_forward,
                                          tile_pixels)

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402


def test_koleo_closed_form_and_spreading():
    # orthonormal rows: every nearest neighbour is at distance sqrt(2)
    assert math.isclose(float(koleo_loss(torch.eye(4))), -math.log(math.sqrt(2)), rel_tol=1e-5)
    # scale-invariant (rows are normalised) and nearest = closest, not the first other row
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]])
    n = torch.nn.functional.normalize(x, dim=1)
    d01, d21 = (n[0] - n[1]).norm(), (n[2] - n[1]).norm()  # row 2's nearest is row 1 (dot -0.995 > -1)
    ref = -(2 * torch.log(d01) + torch.log(d21)) / 3
    assert torch.allclose(koleo_loss(x * 5), ref, atol=1e-5)
    # gradient descent on KoLeo spreads clustered points apart
    torch.manual_seed(0)
    p = (torch.randn(8, 3) * 0.05 + torch.tensor([1.0, 0, 0])).requires_grad_(True)
    before = float(koleo_loss(p).detach())
    opt = torch.optim.SGD([p], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        koleo_loss(p).backward()
        opt.step()
    assert float(koleo_loss(p).detach()) < before - 0.5
    with pytest.raises(ValueError):
        koleo_loss(torch.ones(1, 3))


def _batch(n_images: int = 3, size: int = 16) -> ChannelBatch:
    torch.manual_seed(1)
    counts = torch.tensor([2, 1, 3][:n_images])
    planes = torch.rand(int(counts.sum()), size, size) + 0.1  # no zeros before masking
    return ChannelBatch(planes, counts, tuple(("a", "b", "c")[:int(c)] for c in counts))


def test_mask_tiles_blanks_exactly_the_masked_tiles():
    b = _batch()
    masked, mask = mask_tiles(b, patch=4, ratio=0.25, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (6, 4, 4) and mask.dtype == torch.bool
    assert (mask.view(6, -1).sum(1) == 4).all()  # 25 % of 16 tiles per plane, every plane
    tiles, orig = tile_pixels(masked.planes, 4), tile_pixels(b.planes, 4)
    assert (tiles[mask] == 0).all() and torch.equal(tiles[~mask], orig[~mask])
    assert torch.equal(masked.num_channels, b.num_channels) and masked.channel_names == b.channel_names
    assert float(b.planes.min()) > 0  # the input batch is not modified
    assert not mask_tiles(b, 4, 0.0)[1].any()


def test_tile_pixels_layout():
    planes = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
    t = tile_pixels(planes, 2)
    assert t.shape == (2, 2, 2, 4)
    assert t[0, 0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]  # row 0, column 1 tile of plane 0


def _net(recon: bool = True) -> DinoNet:
    from chadavit.models import create_model

    torch.manual_seed(0)
    bb = create_model("chada_vit_nano", embed_dim=16, depth=1, num_heads=2, mlp_dim=32, img_size=16, patch_size=4,
                      channel_embedding="identity", channel_vocab=["a", "b", "c"])
    return DinoNet(bb, DINOHead(16, 8, 16, 8), recon_patch=4 if recon else 0)


def test_masked_loss_shape_value_and_gradient():
    net = _net()
    b = _batch()
    masked, mask = mask_tiles(b, 4, 0.5, generator=torch.Generator().manual_seed(0))
    out, cls, pred = net([masked], True, True)
    assert out.shape == (3, 8) and cls.shape == (3, 16) and pred.shape == (6, 4, 4, 16)
    target = tile_pixels(b.planes, 4)
    loss = masked_reconstruction_loss(pred, target, mask)
    assert torch.isclose(loss, ((pred - target)[mask] ** 2).mean())
    loss.backward()
    assert net.recon.weight.grad is not None and float(net.recon.weight.grad.abs().sum()) > 0
    assert float(net.backbone.patch_embed.proj.weight.grad.abs().sum()) > 0  # reaches the encoder
    assert net.head.mlp[0].weight.grad is None  # the DINO head is not part of this loss
    with pytest.raises(ValueError):
        masked_reconstruction_loss(pred, target[:, :2], mask)


def test_student_forward_is_plain_forward_when_off_and_adds_terms_when_on():
    net = _net()
    torch.manual_seed(3)
    glob = ChannelBatch(torch.rand(8, 16, 16), torch.tensor([2, 2, 2, 2]), (("a", "b"),) * 4)  # 2 views x 2 images
    out, terms = student_forward(net, [glob], DinoConfig(), 4)
    assert terms == {} and torch.equal(out, net([glob]))
    out2, terms = student_forward(net, [glob], DinoConfig(koleo_weight=0.1, mask_ratio=0.5, mask_weight=2.0), 4)
    assert set(terms) == {"koleo", "recon"} and out2.shape == out.shape
    assert all(torch.isfinite(v) and v.requires_grad for v in terms.values())


def test_channel_intensity_per_channel_and_off():
    g = torch.Generator().manual_seed(0)
    x = torch.full((3, 8, 8), 0.5)
    y = channel_intensity(x, g, shift=0.3, gamma=(0.5, 1.5))
    per_channel = y.view(3, -1)
    assert (per_channel.std(1) == 0).all()  # one draw per channel, uniform over pixels
    assert len(set(per_channel[:, 0].tolist())) == 3  # channels differ
    lo, hi = 0.5 ** 1.5 - 0.3, 0.5 ** 0.5 + 0.3
    assert ((per_channel[:, 0] >= max(lo, 0)) & (per_channel[:, 0] <= hi)).all()
    assert torch.equal(channel_intensity(x, g, 0.0, (1.0, 1.0)), x)
    # off by default: MultiCrop draws the same crops as before the option existed
    img = torch.rand(2, 32, 32)
    a = MultiCrop(AugmentConfig(n_local=1))(img, ["a", "b"], torch.Generator().manual_seed(5))
    b = MultiCrop(AugmentConfig(n_local=1, intensity_shift=0.0))(img, ["a", "b"], torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a[0] + a[1], b[0] + b[1]))


def test_config_validates_new_keys(tmp_path):
    for bad in ("dino.mask_ratio=1.0", "dino.koleo_weight=-1", "augment.gamma=[1.5,0.5]",
                "augment.intensity_shift=-0.1", "train.layer_decay=0", "train.freeze_blocks=-1"):
        with pytest.raises(ConfigError):
            tiny_config(tmp_path, bad)


def test_training_with_koleo_mask_and_intensity_logs_terms(tmp_path):
    import json

    from chadavit.pretrain.trainer import train

    out = tmp_path / "run"
    s = train(tiny_config(out, "train.epochs=1", "dino.koleo_weight=0.1", "dino.mask_ratio=0.3",
                          "augment.intensity_shift=0.3", "augment.gamma=[0.5,1.5]"))
    rec = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert s["steps"] == 6 and all("loss_koleo" in r and "loss_recon" in r for r in rec)
    assert all(math.isfinite(r["loss"]) and r["loss_recon"] > 0 for r in rec)
