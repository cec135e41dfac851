"""Numeric precision: ``auto`` | ``fp32`` | ``bf16`` -> a compute dtype, from what the hardware does natively.

bfloat16 pays only where the hardware multiplies it natively: CUDA devices with bf16 support, and
CPUs with AMX (``amx_bf16``) or AVX-512 BF16 (``avx512_bf16``). Elsewhere bf16 is emulated and
slower than float32, so ``auto`` picks fp32 there and an explicit ``bf16`` request falls back to
fp32 with a warning that says why.

How each precision is applied (see docs/models.md, "Speed"):

* inference (:func:`prepare_inference`): weights are cast once to bf16, except the norms, which
  keep float32 parameters and compute their statistics in float32 (measured faster than autocast,
  which re-casts activations around every op);
* training (:func:`train_autocast`): ``torch.autocast`` over the forward only, so parameters,
  gradients and the optimiser state stay float32; the DINO loss and centring run in float32, and so
  does attention on CPU (``packed_attention``). ``auto`` trains in fp32 on CPUs
  (:func:`resolve_train_precision`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from chadavit.errors import ChadavitError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads PRECISIONS without loading torch
    import torch
    from torch import nn

log = logging.getLogger("chadavit.precision")

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
_ALIASES = {"float32": "fp32", "fp32": "fp32", "32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "auto": "auto"}
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # x86 (/proc/cpuinfo); "bf16" is the aarch64 feature name


class PrecisionError(ChadavitError, ValueError):
    """An unknown ``--precision`` value."""


def normalize_precision(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise PrecisionError(f"--precision {name!r}: choose one of {', '.join(PRECISIONS)}")
    return _ALIASES[key]


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


@functools.lru_cache(maxsize=None)
def cpu_bf16_support() -> str | None:
    """The CPU feature that computes bf16 natively (``"amx_bf16"``, ``"avx512_bf16"``, ``"bf16"``), or None."""
    flags = _cpuinfo_flags()
    for flag in CPU_BF16_FLAGS:
        if flag in flags:
            return flag
    if platform.machine().lower() in ("aarch64", "arm64") and "bf16" in flags:
        return "bf16"
    return None


def device_bf16_support(device: torch.device) -> str | None:
    """Why ``device`` computes bf16 natively (a short reason), or None when it does not."""
    import torch
    if device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return f"CUDA device {torch.cuda.get_device_name(device)} supports bf16"
        return None
    if device.type == "cpu":
        flag = cpu_bf16_support()
        return f"CPU has {flag}" if flag else None
    return None


_said: set[tuple[str, str]] = set()


def _say_once(level: int, key: tuple[str, str], msg: str, *args: object) -> None:
    """Log a precision decision once per (request, device), not once per batch."""
    if key not in _said:
        _said.add(key)
        log.log(level, msg, *args)


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``; logs the choice, warns on a bf16 fallback."""
    import torch
    name = normalize_precision(precision)
    device = torch.device(device)
    if name == "fp32":
        return torch.float32
    reason = device_bf16_support(device)
    key = (name, str(device))
    if reason is not None:
        _say_once(logging.INFO, key, "precision %s on %s: bf16 (%s)", name, device, reason)
        return torch.bfloat16
    if name == "bf16":
        what = ("this CPU has neither AMX nor AVX-512 BF16 (flags amx_bf16 / avx512_bf16)"
                if device.type == "cpu" else f"{device} does not compute bf16 natively")
        _say_once(logging.WARNING, key, "--precision bf16 requested but %s; falling back to fp32 "
                  "(bf16 would be emulated and slower)", what)
    else:
        _say_once(logging.INFO, key, "precision auto on %s: fp32 (no native bf16)", device)
    return torch.float32


def resolve_train_precision(precision: str, device: torch.device | str) -> torch.dtype:
    """Training dtype. ``auto`` = bf16 on CUDA with native bf16, fp32 on CPUs.

    Why CPUs train in fp32 under ``auto``: on an AVX-512 BF16 CPU without AMX, autocast made the
    ``plate`` preset's training slower (232 s vs 201 s) and no better, and even ``chada_vit_moyen``
    gains only 1.3x, because attention (which does not speed up in bf16 there) dominates the step
    (docs/models.md, "Speed"). ``bf16`` still asks for it explicitly.
    """
    import torch
    name = normalize_precision(precision)
    device = torch.device(device)
    if name == "auto" and device.type != "cuda":
        _say_once(logging.INFO, ("train-auto", str(device)), "training precision auto on %s: fp32 "
                  "(bf16 training measured no faster on CPUs; --precision bf16 to force it)", device)
        return torch.float32
    return resolve_precision(name, device)


def precision_name(dtype: torch.dtype) -> str:
    import torch
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def prepare_inference(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast ``model``'s weights once to ``dtype`` for inference; LayerNorm parameters stay float32.

    The CPU and CUDA layer-norm kernels accept bf16 inputs with float32 weights and compute the
    statistics in float32, so norms stay accurate while every matmul runs in bf16.
    """
    import torch
    from torch import nn
    if dtype == torch.float32:
        return model.float()
    model.to(dtype)
    for mod in model.modules():
        if isinstance(mod, nn.LayerNorm):
            mod.float()
    return model


def train_autocast(dtype: torch.dtype, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """Autocast context for a training forward pass (a no-op in fp32). Parameters and optimiser stay fp32."""
    import torch
    device = torch.device(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
