"""The networks DINO trains: backbone + head, optional ``torch.compile``, optimiser parameter groups."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.pretrain.config import ConfigError, PretrainConfig
from chadavit.pretrain.head import DINOHead

log = logging.getLogger(__name__)


class DinoNet(nn.Module):
    """Backbone + DINO head; ``forward`` takes every crop batch of a step in one call (one DDP forward).

    ``recon_patch`` > 0 adds the linear head of the masked-patch objective (``pretrain/objectives.py``):
    each output patch token of the first crop batch predicts its tile's ``recon_patch ** 2`` pixels.
    """

    def __init__(self, backbone: nn.Module, head: DINOHead, recon_patch: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.recon = nn.Linear(backbone.embed_dim, recon_patch * recon_patch) if recon_patch else None

    def forward(self, crops: list[ChannelBatch], with_cls: bool = False, reconstruct: bool = False) -> Any:
        """Head outputs of all crops, concatenated; with ``with_cls`` also their CLS embeddings (monitoring,
        KoLeo); with ``reconstruct`` also the tile predictions ``(planes, rows, cols, patch^2)`` of ``crops[0]``."""
        enc = [self.backbone(b) for b in crops]
        cls = [e.cls for e in enc]
        out = torch.cat([self.head(c) for c in cls])
        if not (with_cls or reconstruct):
            return out
        res = (out, torch.cat(cls))
        if reconstruct:
            if self.recon is None:
                raise RuntimeError("reconstruct=True needs a DinoNet built with recon_patch > 0")
            res += (self.recon(torch.cat(enc[0].patch_tokens)),)
        return res


class MaybeCompiled:
    """``torch.compile`` where it works; falls back to eager (with a warning) if compilation fails.

    Why: packed batches have data-dependent token counts, which some torch/inductor versions cannot
    compile (torch 2.13 CPU: "cannot determine truth value of Relational"); a training job must not die of it.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.compiled = torch.compile(module)
        self.ok = True

    def __call__(self, *args: Any) -> Any:
        if self.ok:
            try:
                return self.compiled(*args)
            except Exception as exc:  # noqa: BLE001
                self.ok = False
                log.warning("torch.compile failed (%s: %s); continuing without compilation",
                            type(exc).__name__, str(exc).splitlines()[0][:200])
        return self.module(*args)


def build_backbone(cfg: PretrainConfig, channel_vocab: list[str] | None = None) -> nn.Module:
    """The encoder of ``cfg.model`` (or of ``train.init``, extended by ``channel_vocab``); ``channel_vocab``
    fills ``channel_vocab: auto`` (names of the training data). ``train.freeze_blocks`` is applied here."""
    from chadavit.models import create_model
    from chadavit.pretrain.init import freeze_early, load_init_backbone

    if cfg.train.init:
        backbone = load_init_backbone(cfg.train.init, channel_vocab)
        freeze_early(backbone, cfg.train.freeze_blocks)
        return backbone
    overrides = dict(cfg.model.overrides)
    if overrides.get("channel_vocab") == "auto":
        overrides["channel_vocab"] = list(channel_vocab or [])
    try:
        backbone = create_model(cfg.model.name, **overrides)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"model: {exc}") from exc
    freeze_early(backbone, cfg.train.freeze_blocks)
    return backbone


def param_groups(net: DinoNet, layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """No weight decay on biases, norms, 1-D parameters and the backbone's declared tokens/embeddings.

    With ``layer_decay`` < 1 every group also carries ``lr_scale`` (layer-wise lr decay,
    :func:`chadavit.pretrain.init.lr_scale`); the trainer multiplies the scheduled lr by it.
    """
    from chadavit.pretrain.init import backbone_depth, lr_scale

    skip = set()
    nwd = getattr(net.backbone, "no_weight_decay", None)
    if callable(nwd):
        skip = {f"backbone.{n}" for n in nwd()}
    depth = backbone_depth(net.backbone)
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        wd = not (p.ndim <= 1 or name.endswith(".bias") or name in skip)
        groups.setdefault((wd, lr_scale(name, depth, layer_decay)), []).append(p)
    if layer_decay >= 1.0:  # the two groups of earlier checkpoints, in their order
        return [{"params": groups.get((True, 1.0), []), "apply_wd": True},
                {"params": groups.get((False, 1.0), []), "apply_wd": False, "weight_decay": 0.0}]
    return [{"params": ps, "apply_wd": wd, "lr_scale": scale, **({} if wd else {"weight_decay": 0.0})}
            for (wd, scale), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))]
