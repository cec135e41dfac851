"""Atomic checkpoints of plain types and tensors, read back with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from chadavit.errors import ChadavitError


class ResumeError(ChadavitError, RuntimeError):
    """A checkpoint cannot be used to continue this run; the message says why."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write to a temporary name in the same folder, fsync, then ``os.replace``.

    A kill at any instant leaves either the previous checkpoint or the new one, never a torn file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    try:  # make the rename durable too
        fd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return p


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ResumeError(f"{p}: checkpoint not found")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ResumeError(f"{p}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


RESUME_SECTIONS = ("model", "dino", "augment", "data")


def load_resumable(cfg: Any, ckpt_path: Path) -> dict[str, Any]:
    """Load ``ckpt_path`` and check it was written by a run with the same model, loss, augmentation and data.

    Why: continuing a run under a different config would silently mix two experiments in one set of weights.
    """
    from chadavit.pretrain.config import config_from_dict

    state = load_checkpoint(ckpt_path)
    saved = config_from_dict(state["config"])
    for section in RESUME_SECTIONS:
        a, b = getattr(saved, section), getattr(cfg, section)
        if section == "data":
            a, b = ((a.paths, a.synthetic, a.batch_size, a.filter, a.split_channels, a.cells),
                    (b.paths, b.synthetic, b.batch_size, b.filter, b.split_channels, b.cells))
        if a != b:
            raise ResumeError(f"{ckpt_path}: the checkpoint was written with a different '{section}' config; "
                              "use a new train.out_dir or train.resume=false")
    return state
