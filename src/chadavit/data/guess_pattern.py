"""Guess, from file names alone, that a folder holds one file per channel, and the ``--pattern`` that groups it.

Without ``--pattern`` every file is one image, so ``A01_s1_w1.tif``, ``A01_s1_w2.tif`` ... became one
single-channel image per file with no word said. :func:`guess_channel_pattern` looks for one position
in the names (split at separators and letter/digit boundaries) whose few values repeat in every group
of otherwise identical names, and writes the pattern that would group them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

_TOKEN = re.compile(r"[A-P]\d\d(?!\d)|\d+|[A-Za-z]+|[^A-Za-z\d]+")  # a well (D03) is one token
_WELL = re.compile(r"^[A-Pa-p]\d{1,2}$")
_MARKERS = ("w", "c", "ch", "d", "channel", "wavelength", "wl")  # what microscopes write before a channel number
MAX_CHANNELS = 10  # more distinct values than this at one position are not channels
MAX_NAMES = 5000  # names looked at: enough to see the structure, cheap for a folder of millions


@dataclass(frozen=True)
class PatternGuess:
    pattern: str  # e.g. "{well}_s{site}_w{channel}.tif"
    channels: tuple[str, ...]  # the values of {channel}, e.g. ("1", "2", "3")
    n_images: int  # images the pattern would make of the names looked at
    n_files: int


def _tokens(name: str) -> list[str]:
    return _TOKEN.findall(name)


def _field_name(values: set[str], before: str, used: set[str]) -> str:
    if all(_WELL.match(v) for v in values) and "well" not in used:
        return "well:[A-P]\\d\\d" if all(re.fullmatch(r"[A-P]\d\d", v) for v in values) else "well"
    if all(v.isdigit() for v in values) and before[-1:].lower() in ("s", "f") and "site" not in used:
        return "site"
    return f"f{len(used) + 1}"


def _varies_elsewhere(token: str, before: str) -> bool:
    """A well (``D03``) or a site number (``f00``, ``s1``) is a field even where the names share it."""
    return bool(_WELL.match(token)) or token.isdigit() and before.lower() in ("s", "f")


def _pattern(rows: list[list[str]], channel_at: int, suffix: str) -> str:
    """Constant tokens stay literal, each run of varying tokens becomes one field, the channel its own."""
    parts: list[str] = []
    used: set[str] = set()
    run: list[int] = []

    def close() -> None:
        if run:
            values = {"".join(r[i] for i in run) for r in rows}
            name = _field_name(values, "".join(parts)[-1:] if parts else "", used)
            used.add(name.split(":")[0])
            parts.append("{" + name + "}")
            run.clear()

    for i in range(len(rows[0])):
        if i == channel_at:
            close()
            parts.append("{channel}")
        elif len({r[i] for r in rows}) == 1 and not _varies_elsewhere(rows[0][i], rows[0][i - 1] if i else ""):
            close()
            parts.append(rows[0][i])
        else:
            run.append(i)
    close()
    return "".join(parts) + suffix


def _channel_like(values: set[str], before: str) -> bool:
    """Numbers after a channel marker (``w1``, ``d0``, ``ch2``) or names (``DNA``, ``GFP``); not sites or wells."""
    if all(v.isdigit() for v in values):
        return before.lower() in _MARKERS
    return not any(v.isdigit() or _WELL.match(v) for v in values)


def guess_channel_pattern(paths: Sequence[str | PurePath]) -> PatternGuess | None:
    """The one-file-per-channel grouping of ``paths`` (file names only), or None when there is none.

    A grouping counts when, at one token position, 2 to ``MAX_CHANNELS`` channel-like values occur
    (numbers after a marker such as ``w``/``c``/``ch``/``d``, or names such as ``DNA``), and every group
    of names identical elsewhere holds at least two of them and no value twice.
    """
    names = [PurePath(p).name for p in list(paths)[:MAX_NAMES]]
    if len(names) < 2:
        return None
    suffix = "".join(PurePath(names[0]).suffixes) or ""
    stems = [n[: len(n) - len(suffix)] if suffix and n.endswith(suffix) else None for n in names]
    rows = [_tokens(s) for s in stems if s is not None]
    if len(rows) != len(names) or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        return None  # mixed suffixes or shapes of name: no guess
    best: PatternGuess | None = None
    for i in range(len(rows[0])):
        values = {r[i] for r in rows}
        if not 2 <= len(values) <= MAX_CHANNELS or not _channel_like(values, rows[0][i - 1] if i else ""):
            continue
        groups: dict[tuple[str, ...], list[str]] = {}
        for r in rows:
            groups.setdefault(tuple(r[:i] + r[i + 1:]), []).append(r[i])
        if any(len(g) < 2 or len(set(g)) != len(g) for g in groups.values()):
            continue
        if len(groups) < 2 and any(len(v) < 2 and not v.isdigit() for v in values):
            continue  # a.png, b.png, c.png: three images more likely than three channels
        guess = PatternGuess(_pattern(rows, i, suffix), tuple(sorted(values)), len(groups), len(rows))
        if best is None or guess.n_images < best.n_images:
            best = guess
    return best


def channel_grouping_hint(folder: str | PurePath, files: Sequence[str | PurePath]) -> str | None:
    """The warning for a folder read without ``--pattern`` whose names look like one file per channel."""
    guess = guess_channel_pattern(files)
    if guess is None:
        return None
    more = f" (from the first {MAX_NAMES} names)" if len(files) > MAX_NAMES else ""
    return (f"{folder}: the file names look like one file per channel (channels {', '.join(guess.channels)}), "
            f"but without --pattern each of the {len(files)} files is embedded as its own image. To group them "
            f"into {guess.n_images} image(s){more}, rerun with --pattern \"{guess.pattern}\"")
