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
    """Backbone + DINO head; ``forward`` takes every crop batch of a step in one call (one DDP forward)."""

    def __init__(self, backbone: nn.Module, head: DINOHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: list[ChannelBatch], with_cls: bool = False) -> Any:
        """Head outputs of all crops, concatenated; with ``with_cls`` also their CLS embeddings (for monitoring)."""
        cls = [self.backbone(b).cls for b in crops]
        out = torch.cat([self.head(c) for c in cls])
        return (out, torch.cat(cls)) if with_cls else out


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
    """The encoder of ``cfg.model``; ``channel_vocab`` fills ``channel_vocab: auto`` (names of the training data)."""
    from chadavit.models import create_model

    overrides = dict(cfg.model.overrides)
    if overrides.get("channel_vocab") == "auto":
        overrides["channel_vocab"] = list(channel_vocab or [])
    try:
        return create_model(cfg.model.name, **overrides)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"model: {exc}") from exc


def param_groups(net: DinoNet) -> list[dict[str, Any]]:
    """No weight decay on biases, norms, 1-D parameters and the backbone's declared tokens/embeddings."""
    skip = set()
    nwd = getattr(net.backbone, "no_weight_decay", None)
    if callable(nwd):
        skip = {f"backbone.{n}" for n in nwd()}
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or name in skip else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]
