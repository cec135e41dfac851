"""Losses beside DINO's CLS objective: KoLeo spreading and masked-patch reconstruction (both off by default).

- **KoLeo** (Sablayrolles et al. 2019, used by DINOv2): ``-mean_i log(min_j ||x_i - x_j||)`` over the
  L2-normalised CLS embeddings of one view, which pushes each embedding away from its nearest neighbour in
  the batch (uniform spread, against partial collapse).
- **Masked-patch reconstruction** (SimMIM-style, a light alternative to iBOT's masked-token loss): the
  student sees its global crops with a share ``dino.mask_ratio`` of (channel, patch) tiles blanked to 0;
  a linear head on each blanked tile's output token predicts the tile's normalised pixels (mean squared
  error over the blanked tiles only). Tiles are blanked per channel, so a token must carry its own
  channel's content, and can borrow from the other channels at the same place. The teacher sees the
  whole crops.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from chadavit.batch import ChannelBatch
from chadavit.pretrain.config import DinoConfig


def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KoLeo of ``(B, D)`` embeddings (B >= 2): mean negative log distance to the nearest other row."""
    if x.shape[0] < 2:
        raise ValueError(f"KoLeo needs at least 2 embeddings, got {x.shape[0]}")
    x = F.normalize(x.float(), dim=-1, eps=eps)
    with torch.no_grad():
        dots = x @ x.T
        dots.fill_diagonal_(-2.0)
        nearest = dots.argmax(dim=1)
    dist = (x - x[nearest]).norm(dim=-1)
    return -torch.log(dist + eps).mean()


def mask_tiles(batch: ChannelBatch, patch: int, ratio: float,
               generator: torch.Generator | None = None) -> tuple[ChannelBatch, torch.Tensor]:
    """A copy of ``batch`` with a random share ``ratio`` of each plane's patch tiles set to 0, and the
    ``(planes, rows, cols)`` boolean mask of blanked tiles (at least one per plane when ratio > 0)."""
    p, h, w = batch.planes.shape
    gh, gw = h // patch, w // patch
    n = gh * gw
    k = max(1, int(round(ratio * n))) if ratio > 0 else 0
    scores = torch.rand(p, n, generator=generator).to(batch.planes.device)
    mask = torch.zeros(p, n, dtype=torch.bool, device=batch.planes.device)
    if k:
        mask.scatter_(1, scores.topk(k, dim=1).indices, True)
    mask = mask.view(p, gh, gw)
    pixels = mask.repeat_interleave(patch, 1).repeat_interleave(patch, 2)
    planes = batch.planes.clone()
    planes[:, : gh * patch, : gw * patch] = planes[:, : gh * patch, : gw * patch].masked_fill(pixels, 0.0)
    return dataclasses.replace(batch, planes=planes), mask


def tile_pixels(planes: torch.Tensor, patch: int) -> torch.Tensor:
    """``(P, H, W)`` planes as ``(P, H // patch, W // patch, patch * patch)`` tiles (row-major pixels)."""
    p, h, w = planes.shape
    gh, gw = h // patch, w // patch
    t = planes[:, : gh * patch, : gw * patch].reshape(p, gh, patch, gw, patch)
    return t.permute(0, 1, 3, 2, 4).reshape(p, gh, gw, patch * patch)


def masked_reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and true tile pixels ``(P, h, w, patch^2)`` on blanked tiles."""
    if pred.shape != target.shape or mask.shape != pred.shape[:3]:
        raise ValueError(f"prediction {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
                         f"{tuple(mask.shape)} do not match")
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return F.mse_loss(pred.float()[mask], target.float()[mask])


def student_forward(forward: Any, crops: list[ChannelBatch], d: DinoConfig, patch: int
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The student's head outputs for the DINO loss and the weighted extra loss terms that ``d`` turns on.

    ``crops[0]`` holds the global crops (2 views x B images, view-major); with ``d.mask_ratio`` > 0 the
    student sees them with tiles blanked. With both objectives off this is exactly ``forward(crops)``.
    """
    if d.koleo_weight <= 0 and d.mask_ratio <= 0:
        return forward(crops), {}
    s_crops, mask = crops, None
    if d.mask_ratio > 0:
        masked, mask = mask_tiles(crops[0], patch, d.mask_ratio)
        s_crops = [masked, *crops[1:]]
    res = forward(s_crops, True, mask is not None)
    terms: dict[str, torch.Tensor] = {}
    if d.koleo_weight > 0:
        views = res[1][: len(crops[0])].chunk(2)
        terms["koleo"] = d.koleo_weight * sum(koleo_loss(v) for v in views) / len(views)
    if mask is not None:
        target = tile_pixels(crops[0].planes, patch)
        terms["recon"] = d.mask_weight * masked_reconstruction_loss(res[2], target, mask)
    return res[0], terms
