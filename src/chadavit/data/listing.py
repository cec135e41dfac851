"""Listing folders without losing anything: every file found, every folder or file that could not be read reported,
and file names that are not valid UTF-8 kept visibly (``\\xNN``) instead of crashing the writers downstream."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def utf8(text: str) -> str:
    """``text`` made valid UTF-8: bytes of a file name that are not (kept by Python as surrogates) become ``\\xNN``.

    Lossless and visible, so such a name can be stored in Parquet, CSV and printed, where it used to crash.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class Unreadable:
    """A folder or file that could not be listed or examined: reported, never silently dropped."""

    path: str
    message: str


def walk_files(root: Path, recursive: bool = True, problems: list[Unreadable] | None = None) -> list[Path]:
    """Every regular file under ``root`` (symlinked folders not followed), sorted.

    A sub-folder that cannot be listed (permissions, I/O error) or an entry that cannot be examined is
    appended to ``problems``; with ``problems=None`` it is logged as a warning. Either way it is never
    silently skipped.
    """
    found: list[Unreadable] = []

    def report(path: str | os.PathLike[str] | None, exc: OSError, what: str) -> None:
        found.append(Unreadable(utf8(str(path if path is not None else root)),
                                f"{utf8(str(path))}: {what} ({exc.strerror or type(exc).__name__})"))

    files: list[Path] = []
    if recursive:
        def onerror(exc: OSError) -> None:
            report(exc.filename, exc, "cannot list this folder; its images are not included")

        for dirpath, _, names in os.walk(root, onerror=onerror):
            files += [Path(dirpath) / n for n in names]
    else:
        try:
            files = list(root.iterdir())
        except OSError as exc:
            report(root, exc, "cannot list this folder")
    out = []
    for f in files:
        try:
            if f.is_file():
                out.append(f)
        except OSError as exc:
            report(f, exc, "cannot examine this file")
    if problems is not None:
        problems.extend(found)
    for p in found if problems is None else ():
        log.warning("%s", p.message)
    return sorted(out)
