"""What a result was produced with: package version, git commit, library versions, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "numpy", "pandas", "scikit-learn", "scipy", "zarr", "pyarrow", "safetensors", "matplotlib",
             "pyyaml")


def git_commit(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Commit of the git checkout holding the package (``"unknown"`` outside one) and whether it had local edits."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    if "site-packages" in where.parts or "dist-packages" in where.parts:
        return {"commit": "unknown", "dirty": None}  # an installed copy: a surrounding repo is not its source
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return {"commit": "unknown", "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=20)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": commit.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def hardware() -> dict[str, Any]:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    hw: dict[str, Any] = {"cpu_count": os.cpu_count(), "cpus_available": cores, "machine": platform.machine(),
                          "processor": platform.processor() or platform.machine(), "platform": platform.platform(),
                          "torch_threads": torch.get_num_threads(), "gpu": None, "gpu_count": 0}
    if torch.cuda.is_available():
        hw["gpu_count"] = torch.cuda.device_count()
        hw["gpu"] = torch.cuda.get_device_name(0)
        hw["cuda"] = torch.version.cuda
    return hw


def provenance() -> dict[str, Any]:
    """Everything above in one JSON-able dict (``chadavit`` version first)."""
    from chadavit.version import __version__

    return {"chadavit_version": __version__, "git": git_commit(), "libraries": library_versions(),
            "hardware": hardware(), "command": " ".join(sys.argv)}
