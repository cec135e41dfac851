"""Interleaving one CLS token per image with that image's body tokens in a packed tensor."""

from __future__ import annotations

import torch

from chadavit.models.layers.attention import PackedSequences


def pack_with_cls(cls: torch.Tensor, body: torch.Tensor, body_counts: torch.Tensor
                  ) -> tuple[torch.Tensor, PackedSequences, torch.Tensor, torch.Tensor]:
    """Lay out ``[cls_0, body_0..., cls_1, body_1..., ...]``.

    Args:
        cls: ``(B, D)`` one CLS token per image.
        body: ``(M, D)`` every image's other tokens, image after image.
        body_counts: ``(B,)`` how many body tokens each image has.

    Returns the packed ``(B + M, D)`` tokens, their sequences, and the positions of the CLS and body
    tokens in the packed tensor (to read them back after the blocks).
    """
    counts = body_counts.cpu().long()
    b = len(counts)
    device = body.device
    body_index = torch.arange(int(counts.sum())) + torch.repeat_interleave(torch.arange(b) + 1, counts)
    cls_index = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)[:-1]]) + torch.arange(b)
    body_index, cls_index = body_index.to(device), cls_index.to(device)
    x = body.new_zeros(b + body.shape[0], body.shape[-1])
    x = x.index_copy(0, body_index, body).index_copy(0, cls_index, cls.to(body.dtype))
    return x, PackedSequences([1 + int(c) for c in counts], device), cls_index, body_index
