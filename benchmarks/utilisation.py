"""Shared by the benchmarks: analytic FLOPs of real tokens, and the matmul peak measured in the same run.

FLOPs count multiply-adds as 2 and only the work the model needs: the patch projection of every
real plane, and per block the QKV / output projections, the MLP and attention (``QK^T`` and
``AV``) over each image's own sequence of ``1 + channels * patches`` tokens. Padding, norms,
softmax and element-wise ops are not counted (they are memory-bound and small in FLOPs). A
training step (forward, backward, optimiser) counts 3x the forward.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch


def forward_flops(channel_counts: Iterable[int], img_size: int, patch: int, dim: int, depth: int,
                  mlp_dim: int) -> float:
    """Useful forward FLOPs of a ChAda-ViT on images with these channel counts (see the module docstring)."""
    n = (img_size // patch) ** 2
    total = 0.0
    for c in channel_counts:
        t = 1 + int(c) * n
        embed = 2.0 * c * n * patch * patch * dim
        per_block = 2.0 * t * dim * (3 * dim + dim + 2 * mlp_dim) + 4.0 * t * t * dim
        total += embed + depth * per_block
    return total


def config_forward_flops(c: object, channel_counts: Iterable[int], img_size: int | None = None) -> float:
    """:func:`forward_flops` for a :class:`~chadavit.models.config.ChadaViTConfig`."""
    return forward_flops(channel_counts, img_size or c.img_size, c.patch_size, c.embed_dim,  # type: ignore[attr-defined]
                         c.depth, c.mlp_dim)  # type: ignore[attr-defined]


def matmul_peak(dtype: torch.dtype, m: int = 4096, k: int = 768, n: int = 2048, reps: int = 5,
                device: str | torch.device = "cpu") -> float:
    """GFLOP/s of an ``(m, k) @ (k, n)`` matmul: the best of ``reps`` runs (the quietest moment of a shared CPU)."""
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        if a.is_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if a.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2.0 * m * k * n / best / 1e9


def peaks(device: str | torch.device = "cpu") -> dict[str, float]:
    """Measured matmul peaks in fp32 and bf16 (GFLOP/s)."""
    return {"fp32": matmul_peak(torch.float32, device=device), "bf16": matmul_peak(torch.bfloat16, device=device)}
