"""Unpacking archives so that a killed run leaves either nothing or a complete folder under its final name."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from chadavit.errors import ChadavitError


class ArchiveError(ChadavitError):
    """An archive is corrupt, unsafe (paths leaving the folder) or does not hold what the dataset needs."""


class UnsafePathError(ArchiveError):
    """A name from a server's table or an archive would put a file outside the target folder."""


UNSAFE_CHARACTERS = frozenset("/\\:\0")


def plain_name(name: str, where: str) -> str:
    """``name`` if it is one plain path segment (no separators, ``..``, drive or NUL), else UnsafePathError.

    For names a server supplies (plate names, plate-map names) that become file or folder names.
    """
    if not name or name.strip(".") == "" or any(c in UNSAFE_CHARACTERS for c in name) or name != name.strip():
        raise UnsafePathError(f"{where}: {name!r} is not a plain file name (path separators, '..', drive letters "
                              "and surrounding spaces are refused); the server's table is damaged or hostile")
    return name


def inside(root: Path, path: Path, where: str) -> Path:
    """``path`` if, resolved (symlinks followed), it stays under ``root``; else UnsafePathError naming ``where``."""
    base = root.resolve()
    target = path.resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"{where}: {path} would be written outside {root}")
    return path


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a zip into ``dest`` (created), refusing members that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as z:
            for m in z.infolist():
                inside(dest, dest / m.filename, f"{archive}: member {m.filename!r}")
            z.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{archive}: not a valid zip ({exc}); delete it and fetch again") from None
    return dest


def scratch_dir(parent: Path, name: str) -> Path:
    """An empty hidden working folder beside the final one (same file system, so renames are atomic)."""
    d = parent / f".tmp-{plain_name(name, f'scratch folder in {parent}')}-{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def publish_dir(src: Path, dest: Path) -> None:
    """Move a finished folder onto its final name in one rename (replacing an older copy)."""
    if dest.exists():
        old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)


def find_dir(root: Path, name: str) -> Path | None:
    """The shallowest folder called ``name`` under ``root`` (``__MACOSX`` copies ignored)."""
    hits = [p for p in root.rglob(name) if p.is_dir() and "__MACOSX" not in p.parts]
    return min(hits, key=lambda p: len(p.parts)) if hits else None


def find_file(root: Path, name: str) -> Path | None:
    hits = [p for p in root.rglob(name) if p.is_file() and "__MACOSX" not in p.parts]
    return min(hits, key=lambda p: len(p.parts)) if hits else None
