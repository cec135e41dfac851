"""Starting pretraining from an existing model: ``train.init``, layer-wise lr decay, frozen early blocks.

Why: 20 CPU-minutes cannot learn a ViT from noise, but they can adapt one (research/anchors_2026.md,
"Levers ranked by expected gain"). The backbone comes from any model spec (``chadavit.models.spec``: run
folder, ``hf:``, ``official:``, ``.safetensors``); its architecture, not ``model.name``, is what trains.
Early layers keep generic features: ``train.freeze_blocks`` stops training them, ``train.layer_decay``
gives block ``i`` of ``L`` the learning rate ``lr * layer_decay ** (L + 1 - i)`` (embeddings: layer 0,
final norm and DINO head: ``L + 1``, full lr).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)

_EMBEDDINGS = ("patch_embed", "cls_token", "pos_embed", "channel_embed")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def backbone_depth(backbone: nn.Module) -> int:
    blocks = getattr(backbone, "blocks", None)
    return len(blocks) if blocks is not None else 0


def layer_id(name: str, depth: int) -> int:
    """Layer index of a backbone parameter name: embeddings 0, ``blocks.i`` i + 1, anything after depth + 1."""
    if name.split(".")[0] in _EMBEDDINGS:
        return 0
    m = _BLOCK.match(name)
    return int(m.group(1)) + 1 if m else depth + 1


def extend_channel_vocab(backbone: nn.Module, names: Sequence[str]) -> list[str]:
    """Add stain names the model has never seen to its identity channel embedding; returns the added names.

    New rows start as the model's ``<unknown>`` vector (what those channels got before), so adding them
    changes no output until training moves them. Slot-embedded models are left alone.
    """
    from chadavit.models.layers.channel_embed import IdentityChannelEmbed

    emb = getattr(backbone, "channel_embed", None)
    if not isinstance(emb, IdentityChannelEmbed):
        return []
    known = {v.lower() for v in emb.vocab}
    new: list[str] = []
    for n in (str(n) for n in names):
        if n and n.lower() not in known:
            known.add(n.lower())
            new.append(n)
    if not new:
        return []
    with torch.no_grad():
        rows = emb.weight.detach()[:1].expand(len(new), -1)
        emb.weight = nn.Parameter(torch.cat([emb.weight.detach(), rows.clone()]))
    emb.vocab = emb.vocab + new
    emb._index = {name.lower(): i + 1 for i, name in enumerate(emb.vocab)}
    backbone.config = backbone.config.replace(channel_vocab=list(emb.vocab))
    return new


def load_init_backbone(spec: str, channel_vocab: Sequence[str] | None = None) -> nn.Module:
    """The backbone named by ``spec`` in training mode, its channel vocabulary extended by ``channel_vocab``."""
    from chadavit.models.spec import load_model_from_spec

    backbone = load_model_from_spec(spec)
    added = extend_channel_vocab(backbone, channel_vocab or [])
    if added:
        log.info("train.init %s: new channel names %s start from its <unknown> embedding", spec, added)
    return backbone.train()


def freeze_early(backbone: nn.Module, n_blocks: int) -> int:
    """Stop training the embeddings and the first ``n_blocks`` blocks (0 = nothing); returns frozen tensors."""
    if n_blocks <= 0:
        return 0
    depth = backbone_depth(backbone)
    if n_blocks > depth:
        from chadavit.pretrain.config import ConfigError

        raise ConfigError(f"train.freeze_blocks={n_blocks} but the backbone has {depth} blocks")
    frozen = 0
    for name, p in backbone.named_parameters():
        if layer_id(name, depth) <= n_blocks:
            p.requires_grad_(False)
            frozen += 1
    return frozen


def lr_scale(name: str, depth: int, layer_decay: float) -> float:
    """Learning-rate factor of a ``DinoNet`` parameter (``backbone.*`` decays with depth, the head does not)."""
    if layer_decay >= 1.0 or not name.startswith("backbone."):
        return 1.0
    return layer_decay ** (depth + 1 - layer_id(name[len("backbone."):], depth))
