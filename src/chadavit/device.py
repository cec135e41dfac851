"""One reading of a ``--device`` / ``train.device`` name: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

Every command checks its device here before loading a model or reading data, so a misspelt name or
an absent accelerator is one :class:`DeviceError` line, not a ``RuntimeError`` from inside torch.
"""

from __future__ import annotations

import torch

from chadavit.errors import ChadavitError


class DeviceError(ChadavitError, ValueError):
    """A device name torch does not know, or a device this machine does not have."""


def check_device(name: str, what: str = "--device") -> torch.device:
    """``name`` as a :class:`torch.device` that exists here (``auto``: CUDA, then Apple MPS, else CPU)."""
    name = str(name).strip()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{what} {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= count:
            raise DeviceError(f"{what} {name} is not available on this machine ({count} CUDA device(s))")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"{what} {name} is not available on this machine (no Apple MPS)")
    elif dev.type == "meta":
        raise DeviceError(f"{what} meta holds no data; use auto, cpu, cuda, cuda:N or mps")
    return dev
