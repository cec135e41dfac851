"""``train.init``: pretraining from an existing model spec, layer-wise lr decay and frozen early blocks."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from chadavit.models import create_model, save_pretrained
from chadavit.pretrain.config import ConfigError
from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.init import extend_channel_vocab, freeze_early, layer_id, lr_scale
from chadavit.pretrain.net import DinoNet, param_groups

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402

ARCH = {"embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_dim": 64, "img_size": 32, "patch_size": 8,
        "channel_embedding": "identity", "channel_vocab": ["DNA", "protein"]}


def _saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(42)
    model = create_model("chada_vit_nano", **ARCH)
    save_pretrained(model, tmp_path / "init")
    return tmp_path / "init", model


def test_layer_ids_and_scales():
    assert layer_id("patch_embed.proj.weight", 2) == 0 and layer_id("channel_embed.weight", 2) == 0
    assert layer_id("blocks.0.attn.qkv.weight", 2) == 1 and layer_id("blocks.1.mlp.fc1.bias", 2) == 2
    assert layer_id("norm.weight", 2) == 3
    assert lr_scale("backbone.pos_embed", 2, 0.5) == 0.125 and lr_scale("backbone.blocks.1.x", 2, 0.5) == 0.5
    assert lr_scale("backbone.norm.weight", 2, 0.5) == 1.0 and lr_scale("head.mlp.0.weight", 2, 0.5) == 1.0
    assert lr_scale("backbone.pos_embed", 2, 1.0) == 1.0


def test_llrd_param_groups_cover_every_parameter_once():
    torch.manual_seed(0)
    net = DinoNet(create_model("chada_vit_nano", **ARCH), DINOHead(32, 16, 32, 8))
    groups = param_groups(net, layer_decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) == len(trainable)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    bb = net.backbone
    assert scale_of[id(bb.patch_embed.proj.weight)] == 0.125
    assert scale_of[id(bb.blocks[0].attn.qkv.weight)] == 0.25
    assert scale_of[id(bb.blocks[1].attn.qkv.weight)] == 0.5
    assert scale_of[id(net.head.mlp[0].weight)] == 1.0
    assert all((g["apply_wd"] is False) == ("weight_decay" in g) for g in groups)
    # without decay: the two groups earlier checkpoints hold
    plain = param_groups(net)
    assert len(plain) == 2 and all("lr_scale" not in g for g in plain)


def test_freeze_early():
    torch.manual_seed(0)
    bb = create_model("chada_vit_nano", **ARCH)
    assert freeze_early(bb, 0) == 0 and all(p.requires_grad for p in bb.parameters())
    freeze_early(bb, 1)
    frozen = {n for n, p in bb.named_parameters() if not p.requires_grad}
    assert "patch_embed.proj.weight" in frozen and "pos_embed" in frozen and "channel_embed.weight" in frozen
    assert any(n.startswith("blocks.0.") for n in frozen) and not any(n.startswith("blocks.1.") for n in frozen)
    assert "norm.weight" not in frozen
    with pytest.raises(ConfigError, match="freeze_blocks=3"):
        freeze_early(bb, 3)


def test_extend_vocab_keeps_outputs_for_known_and_unknown_names():
    from chadavit.batch import ChannelBatch

    torch.manual_seed(0)
    bb = create_model("chada_vit_nano", **ARCH).eval()
    b = ChannelBatch(torch.rand(2, 32, 32), torch.tensor([2]), (("DNA", "GFP"),))
    before = bb(b).cls
    assert extend_channel_vocab(bb, ["DNA", "GFP", "gfp", "Actin"]) == ["GFP", "Actin"]
    assert bb.config.channel_vocab == ["DNA", "protein", "GFP", "Actin"]
    assert torch.allclose(bb(b).cls, before, atol=1e-6)  # GFP starts as the <unknown> vector it had before
    assert extend_channel_vocab(bb, ["dna"]) == []


def test_train_from_init_loads_weights_decays_lr_and_freezes(tmp_path):
    from chadavit.models import load_pretrained
    from chadavit.pretrain.trainer import train

    init_dir, init_model = _saved(tmp_path)
    out = tmp_path / "run"
    cfg = tiny_config(out, f"train.init={init_dir}", "train.layer_decay=0.5", "train.freeze_blocks=1",
                      "train.epochs=1", "model.overrides.channel_vocab=auto")
    s = train(cfg)
    trained = load_pretrained(out / "backbone")
    ref = init_model.state_dict()
    got = trained.state_dict()
    # the data's extra stain (membrane, ER) joined the vocabulary; the frozen part is the init's, bit for bit
    assert {"membrane", "ER"} <= set(trained.config.channel_vocab)
    assert torch.equal(got["blocks.0.attn.qkv.weight"], ref["blocks.0.attn.qkv.weight"])
    assert torch.equal(got["patch_embed.proj.weight"], ref["patch_embed.proj.weight"])
    assert torch.equal(got["channel_embed.weight"][:3], ref["channel_embed.weight"])
    assert not torch.equal(got["blocks.1.attn.qkv.weight"], ref["blocks.1.attn.qkv.weight"])  # trained
    opt = s["_student"]
    assert not opt.backbone.blocks[0].attn.qkv.weight.requires_grad
    # the lr actually applied: block 1 (layer 2 of depth 2) got half the head's lr at the last step
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    lrs = {g["lr_scale"]: g["lr"] for g in ck["optimizer"]["param_groups"]}
    assert set(lrs) == {0.5, 1.0} and math.isclose(lrs[0.5], 0.5 * lrs[1.0], rel_tol=1e-9)
    # the training checkpoint as a model spec rebuilds the backbone as trained (extended vocabulary, statistics)
    from chadavit.models.spec import load_model_from_spec

    from_ckpt = load_model_from_spec(str(out / "checkpoint.pt"))
    assert from_ckpt.config == trained.config
    assert all(torch.equal(v, got[k]) for k, v in from_ckpt.state_dict().items())


def test_init_with_a_bad_spec_fails_before_work(tmp_path):
    from chadavit.models.spec import ModelSpecError
    from chadavit.pretrain.trainer import train

    with pytest.raises(ModelSpecError, match="nope"):
        train(tiny_config(tmp_path / "run", f"train.init={tmp_path / 'nope'}"))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_cli_init_flag_sets_train_init(capsys):
    import yaml

    from chadavit.cli.main import main

    assert main(["pretrain", "--config", "plate", "--init", "hf:someone/model", "train.layer_decay=0.75",
                 "--print-config"]) == 0
    train_cfg = yaml.safe_load(capsys.readouterr().out)["train"]
    assert train_cfg["init"] == "hf:someone/model" and train_cfg["layer_decay"] == 0.75
    assert train_cfg["freeze_blocks"] == 0
