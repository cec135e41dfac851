"""Files that are never seen half-written: write beside the target under a temporary name, then ``os.replace``.

A killed process leaves at most a hidden ``.NAME.tmp-PID`` file, never a torn ``NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from chadavit.errors import ChadavitError


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


class NotWritableError(ChadavitError, OSError):
    """An output location cannot be written (read-only, full, or a file where a folder should be)."""


def check_writable(path: str | os.PathLike[str], what: str = "output") -> None:
    """Refuse, before any work, an output that could not be written when the work is done.

    Probes the folder that would hold ``path`` (its nearest existing ancestor when the folders are yet to
    be made) by creating and removing a hidden file, which finds read-only folders and file systems even
    for root, and a full disk. Nothing is left behind.
    """
    target = Path(path)
    folder = target.parent if target.suffix or not target.is_dir() else target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotWritableError(f"{what} {path}: {folder} is not a folder")
    probe = folder / f".chadavit-write-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NotWritableError(f"{what} {path}: cannot write in {folder} ({reason}); choose another location or "
                               "free some space") from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
