"""Files that are never seen half-written: write beside the target under a temporary name, then ``os.replace``.

A killed process leaves at most a hidden ``.NAME.tmp-PID`` file, never a torn ``NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def temp_path(path: Path, suffix: str = "") -> Path:
    """The hidden temporary name a write to ``path`` goes through (same folder, so the rename is atomic).

    ``suffix`` ends the name for writers that choose the format by it (``.png`` for matplotlib, ``.npz``).
    """
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def replace_synced(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk, then move it over ``path`` (for files a resume relies on)."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_atomic(path: Path, write: Callable[[Path], object], sync: bool = False, suffix: str = "") -> None:
    """``write(tmp)`` then replace ``path`` with it; ``sync`` flushes to disk first."""
    tmp = temp_path(path, suffix)
    write(tmp)
    if sync:
        replace_synced(tmp, path)
    else:
        os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda t: t.write_text(text))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda t: t.write_bytes(data))
