"""Collapse signals of a DINO run, computed from one step's outputs (no extra forward passes).

Why: a collapsed run looks like a quiet run. The DINO loss alone cannot tell "converged" from "every
image maps to the same uniform distribution" (loss = ln(out_dim)); these numbers can:

- ``teacher_entropy`` / ``entropy_ratio``: mean entropy of the centred, sharpened teacher distribution and
  its ratio to ln(out_dim). Ratio 1 = the teacher outputs the uniform distribution for every image.
- ``kl_teacher_student``: mean KL(teacher || student) over the loss's view pairs. It falls to 0 in a
  collapse because there is nothing left to predict.
- ``emb_mean_cos``: mean pairwise cosine similarity of the batch's teacher CLS embeddings (1 = identical).
- ``emb_std``: per-dimension standard deviation of the L2-normalised CLS embeddings, averaged over
  dimensions (0 = identical); ``emb_std_ratio`` divides it by 1/sqrt(dim), its value for isotropic vectors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Per-row entropy (nats) of probability rows; 0 * log 0 counts as 0."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim=-1)


@torch.no_grad()
def teacher_stats(teacher_out: torch.Tensor, center: torch.Tensor, teacher_temp: float) -> dict[str, float]:
    """Mean teacher entropy and its ratio to ln(out_dim), with the centring and temperature the loss uses."""
    k = teacher_out.shape[-1]
    p = F.softmax((teacher_out.float() - center.float()) / teacher_temp, dim=-1)
    h = float(entropy(p).mean())
    return {"teacher_entropy": h, "entropy_ratio": h / math.log(k)}


@torch.no_grad()
def kl_teacher_student(student_out: torch.Tensor, teacher_out: torch.Tensor, center: torch.Tensor,
                       teacher_temp: float, student_temp: float, n_global: int = 2) -> float:
    """Mean KL(teacher || student) over the view pairs :class:`DINOLoss` uses (same-view pairs skipped)."""
    b = teacher_out.shape[0] // n_global
    n_views = student_out.shape[0] // b
    log_s = F.log_softmax(student_out.float() / student_temp, dim=-1).chunk(n_views)
    t = F.softmax((teacher_out.float() - center.float()) / teacher_temp, dim=-1)
    log_t = torch.log(t.clamp_min(1e-30)).chunk(n_global)
    t = t.chunk(n_global)
    total, pairs = 0.0, 0
    for i in range(n_global):
        for j in range(n_views):
            if i == j:
                continue
            total += float((t[i] * (log_t[i] - log_s[j])).sum(dim=-1).mean())
            pairs += 1
    return total / max(pairs, 1)


@torch.no_grad()
def embedding_stats(emb: torch.Tensor) -> dict[str, float]:
    """Mean pairwise cosine (off-diagonal) and mean per-dimension std of L2-normalised embeddings ``(N, D)``."""
    z = F.normalize(emb.float(), dim=-1)
    n, d = z.shape
    if n < 2:
        return {"emb_mean_cos": float("nan"), "emb_std": float("nan"), "emb_std_ratio": float("nan")}
    sim = z @ z.T
    mean_cos = float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))
    std = float(z.std(dim=0, unbiased=False).mean())
    return {"emb_mean_cos": mean_cos, "emb_std": std, "emb_std_ratio": std * math.sqrt(d)}


def collapse_metrics(student_out: torch.Tensor, teacher_out: torch.Tensor, cls: torch.Tensor,
                     center: torch.Tensor, teacher_temp: float, student_temp: float,
                     n_global: int = 2) -> dict[str, float]:
    """Every collapse signal of one step, as plain floats for ``metrics.jsonl``."""
    return {**teacher_stats(teacher_out, center, teacher_temp),
            "kl_teacher_student": kl_teacher_student(student_out, teacher_out, center, teacher_temp,
                                                     student_temp, n_global),
            **embedding_stats(cls)}
