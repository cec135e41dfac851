"""The DINO method (dinov2's "meta architecture"): student, teacher, head, loss and centre, teacher update.

The training loop (``trainer.py``) owns the data, the optimiser and the schedules; it asks the method for
``loss(batch, teacher_temp)`` and, after the optimiser step, for ``update_teacher(momentum)``. The extra
objectives (KoLeo, masked-patch reconstruction) come in through :func:`objectives.student_forward`; a new
objective goes there and into the ``dino`` section of ``config.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from chadavit.pretrain.config import PretrainConfig
from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.loader import MultiCropBatch
from chadavit.pretrain.loss import DINOLoss
from chadavit.pretrain.monitor import collapse_metrics
from chadavit.pretrain.net import DinoNet, MaybeCompiled, param_groups
from chadavit.pretrain.objectives import student_forward
from chadavit.pretrain.runtime import amp_context

# the method's part of a checkpoint
STATE_KEYS = ("student", "teacher", "center")


class DinoMethod:
    """Student and EMA teacher (both ``DinoNet``: backbone + DINO head) with the DINO loss and its centre.

    Built under ``torch.manual_seed`` by the caller, so the same seed gives the same initial weights. Under
    DDP the student is wrapped and the teacher starts from rank 0's student.
    """

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, device: torch.device, distributed: bool = False
                 ) -> None:
        d = self.dino = cfg.dino
        self.cfg, self.device = cfg, device
        head = DINOHead(backbone.embed_dim, d.out_dim, d.hidden_dim, d.bottleneck_dim, d.norm_last_layer)
        self.patch = int(getattr(backbone.config, "patch_size", 0))
        self.student = DinoNet(backbone, head, recon_patch=self.patch if d.mask_ratio > 0 else 0).to(device)
        self.teacher = copy.deepcopy(self.student).to(device)
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.loss_fn = DINOLoss(d.out_dim, d.student_temp, d.center_momentum).to(device)
        self.param_groups = param_groups(self.student, cfg.train.layer_decay)
        student_ddp: nn.Module = self.student
        if distributed:
            student_ddp = nn.parallel.DistributedDataParallel(
                self.student, device_ids=[device.index] if device.type == "cuda" else None)
            self.teacher.load_state_dict(self.student.state_dict())  # DDP broadcast rank 0's student
        self.forward = MaybeCompiled(student_ddp) if cfg.train.compile else student_ddp
        self.teacher_forward = MaybeCompiled(self.teacher) if cfg.train.compile else self.teacher
        self._last_layer = {id(p) for p in self.student.head.last_layer_parameters()}

    def loss(self, batch: MultiCropBatch, teacher_temp: float, signals: bool = False
             ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The total loss to back-propagate and its logs: ``loss`` (the DINO term), ``loss_<extra>`` for each
        extra objective turned on, and the collapse signals of ``monitor.collapse_metrics`` when ``signals``."""
        glob = batch.global_crops.to(self.device, non_blocking=True)
        crops = [glob] + ([batch.local_crops.to(self.device, non_blocking=True)] if batch.local_crops else [])
        with amp_context(self.cfg, self.device):
            with torch.no_grad():
                t_out, t_cls = self.teacher_forward([glob], True)
            s_out, extra = student_forward(self.forward, crops, self.dino, self.patch)
        logs: dict[str, Any] = collapse_metrics(s_out.detach(), t_out, t_cls, self.loss_fn.center, teacher_temp,
                                                self.dino.student_temp) if signals else {}
        dino_loss = self.loss_fn(s_out, t_out, teacher_temp)  # also moves the centre
        loss = dino_loss + sum(extra.values()) if extra else dino_loss
        logs = {"loss": dino_loss.detach(), **logs, **{f"loss_{k}": v.detach() for k, v in extra.items()}}
        return loss, logs

    def drop_last_layer_grads(self) -> None:
        """Freeze the head's last layer for this step (DINO's first ``freeze_last_layer_epochs``)."""
        for p in self.student.parameters():
            if id(p) in self._last_layer:
                p.grad = None

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher = momentum * teacher + (1 - momentum) * student, on the student's trained parameters."""
        for pt, ps in zip(self.teacher.parameters(), self.student.parameters()):
            if ps.requires_grad:  # frozen (train.freeze_blocks) stay bit-identical
                pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)

    def state_dict(self) -> dict[str, Any]:
        return {"student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "center": self.loss_fn.center.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        self.loss_fn.center.copy_(state["center"].to(self.device))
