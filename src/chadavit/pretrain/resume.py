"""Resume and checkpoints of a run: what a checkpoint holds, restoring it, and the NaN stop that names it.

Resume is exact (see ``trainer.py``): the checkpoint holds student, teacher, optimiser, DINO centre and step,
and the loop re-derives data order, augmentations and the drop-path RNG from ``(seed, step)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from chadavit.pretrain.checkpoint import ResumeError, save_checkpoint
from chadavit.pretrain.config import PretrainConfig
from chadavit.pretrain.failures import NonFiniteLossError
from chadavit.pretrain.method import DinoMethod


def restore(state: dict[str, Any] | None, method: DinoMethod, optimizer: torch.optim.Optimizer,
            steps_per_epoch: int, ckpt_path: Path) -> int:
    """Load a resumed checkpoint into ``method`` and ``optimizer``; the step to continue from (0 without one).

    Raises :class:`ResumeError` when the steps per epoch differ (other data or another number of processes).
    """
    if state is None:
        return 0
    method.load_state_dict(state)
    optimizer.load_state_dict(state["optimizer"])
    step = int(state["step"])
    if state.get("steps_per_epoch") != steps_per_epoch:
        raise ResumeError(f"{ckpt_path}: steps per epoch changed ({state.get('steps_per_epoch')} -> "
                          f"{steps_per_epoch}); the data or the number of processes differs from the checkpointed run")
    return step


class Checkpointer:
    """Saves the run's state to ``path`` (rank 0 writes, every rank remembers the step) and words the NaN stop."""

    def __init__(self, path: Path, cfg: PretrainConfig, method: DinoMethod, optimizer: torch.optim.Optimizer,
                 steps_per_epoch: int, world: int, is_main: bool, last_saved: int | None = None,
                 stats: dict[str, Any] | None = None) -> None:
        self.path, self.cfg, self.method, self.optimizer = path, cfg, method, optimizer
        self.spe, self.world, self.is_main, self.stats = steps_per_epoch, world, is_main, stats
        self.last_saved = last_saved

    def state(self, step: int) -> dict[str, Any]:
        """The checkpoint's content at ``step`` (plain types and tensors, for ``torch.load(weights_only=True)``)."""
        m = self.method.state_dict()
        return {
            "student": m["student"], "teacher": m["teacher"], "optimizer": self.optimizer.state_dict(),
            "center": m["center"], "step": step, "epoch": step // self.spe, "steps_per_epoch": self.spe,
            "config": self.cfg.to_dict(), "world_size": self.world,
            # the encoder's own config (resolved channel vocabulary, normalisation and its statistics): what
            # `--model RUN/checkpoint.pt` rebuilds the model from, so it equals what backbone/ would hold
            "backbone_config": self.method.teacher.backbone.config.to_dict(),
            **({"normalization_stats": self.stats} if self.stats is not None else {}),
        }

    def save(self, step: int) -> None:
        self.last_saved = step
        if self.is_main:
            save_checkpoint(self.state(step), self.path)

    def nan_error(self, out: Path, loss: float, step: int, terms: dict[str, float] | None = None
                  ) -> NonFiniteLossError:
        """The error for a non-finite loss at ``step``, naming the last good checkpoint to resume from.

        ``terms`` are the loss's parts (``dino`` and each extra objective, e.g. ``koleo``, ``mask``): with extra
        terms on, the message says which of them is not finite, not "the DINO loss"."""
        good = (f"last good checkpoint: {self.path} (step {self.last_saved}); resume from it with a lower optim.lr "
                "or a smaller optim.clip_grad" if self.last_saved is not None and self.path.exists()
                else "no checkpoint was saved yet; lower optim.lr and start again")
        what = "the DINO loss"
        if terms and set(terms) != {"dino"}:
            bad = [k for k, v in terms.items() if not math.isfinite(v)]
            what = f"the training loss ({' + '.join(terms)}; not finite: {', '.join(bad) or 'the sum'})"
        return NonFiniteLossError(f"{out}: {what} is {loss} at step {step}; training stopped ({good})")
