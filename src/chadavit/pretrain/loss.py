"""DINO loss: cross-entropy between the centred, sharpened teacher and the student over view pairs."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class DINOLoss(nn.Module):
    """Teacher outputs of the 2 global views against student outputs of all views (global first).

    Inputs are view-major: ``teacher_out`` is ``(n_global * B, K)``, ``student_out`` is
    ``(n_views * B, K)`` whose first ``n_global * B`` rows are the same global views. Pairs of the same
    view are skipped; the loss is the mean over the remaining pairs. The centre is an EMA of the
    teacher's batch mean, all-reduced across processes so every rank keeps the same centre.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 n_global: int = 2) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.n_global = n_global
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        student_out = student_out.float()
        teacher_out = teacher_out.float()
        b = teacher_out.shape[0] // self.n_global
        if b * self.n_global != teacher_out.shape[0] or student_out.shape[0] % b:
            raise ValueError(f"teacher rows {teacher_out.shape[0]} / student rows {student_out.shape[0]} do not "
                             f"split into views of {b} images")
        n_views = student_out.shape[0] // b
        s = F.log_softmax(student_out / self.student_temp, dim=-1).chunk(n_views)
        t = F.softmax((teacher_out - self.center) / teacher_temp, dim=-1).detach().chunk(self.n_global)
        total, pairs = student_out.new_zeros(()), 0
        for i, ti in enumerate(t):
            for j, sj in enumerate(s):
                if i == j:
                    continue
                total = total + torch.sum(-ti * sj, dim=-1).mean()
                pairs += 1
        self.update_center(teacher_out)
        return total / max(pairs, 1)

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        batch_center = teacher_out.sum(dim=0, keepdim=True)
        n = torch.tensor([teacher_out.shape[0]], dtype=batch_center.dtype, device=batch_center.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            dist.all_reduce(n)
        batch_center = batch_center / n
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
