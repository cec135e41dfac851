"""A listed image, not yet read (:class:`ImageRecord`), and the readers that give its pixels by channel name."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chadavit.data.listing import Unreadable, utf8
from chadavit.data.readers import ImageFiles, ImageReadError, read_image_with_names
from chadavit.errors import ChadavitError

Reader = Callable[[Sequence[str] | None], tuple[np.ndarray, list[str]]]


class SourceError(ChadavitError, ValueError):
    """The input as a whole cannot be listed (missing folder, bad CSV, no images found)."""


@dataclass
class ImageRecord:
    """One field of view, not yet read.

    ``channel_names`` are the source channel names when known before reading (pattern, CSV,
    OME-Zarr, dataset); ``read(names)`` returns ``(C, H, W)`` pixels of those channels in that
    order (all channels, and their names, for ``None``).
    """

    image_id: str
    sources: tuple[str, ...]
    read: Reader
    channel_names: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # file names that are not UTF-8 (kept by Python as surrogates) would crash Parquet and CSV writes
        self.image_id = utf8(self.image_id)
        self.sources = tuple(utf8(str(s)) for s in self.sources)
        self.metadata = {k: utf8(v) if isinstance(v, str) else v for k, v in self.metadata.items()}


def unreadable_records(problems: Sequence[Unreadable]) -> list[ImageRecord]:
    """One record per folder or file the listing could not read: it fails as an error row, it does not vanish."""
    records: dict[str, ImageRecord] = {}
    for p in problems:
        def read(names: Sequence[str] | None, message: str = p.message) -> tuple[np.ndarray, list[str]]:
            raise ImageReadError(message)

        records.setdefault(p.path, ImageRecord(image_id=p.path, sources=(p.path,), read=read))
    return list(records.values())


def natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def files_reader(files: ImageFiles) -> Reader:
    """Read one-file-per-channel images (all channels in natural order for ``None``)."""
    def read(names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        order = list(names) if names is not None else sorted(files.channels, key=natural_key)
        return files.read(order)

    return read


def select_channels(arr: np.ndarray, have: list[str], names: Sequence[str] | None,
                    what: str) -> tuple[np.ndarray, list[str]]:
    """The planes of ``arr`` (channels ``have``) named ``names``, in that order; all for ``None``."""
    if names is None:
        return arr, have
    missing = [n for n in names if n not in have]
    if missing:
        raise ImageReadError(f"{what}: missing channel(s) {missing}; it has {have}")
    return arr[[have.index(n) for n in names]], list(names)


def multichannel_reader(path: Path) -> Reader:
    """Read a multi-channel image file."""
    def read(names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        arr, have = read_image_with_names(path)
        return select_channels(arr, have, names, str(path))

    return read


def unique_ids(records: list[ImageRecord], what: str) -> list[ImageRecord]:
    """``records``, or a :class:`SourceError` naming the first two that share an id."""
    seen: dict[str, ImageRecord] = {}
    for r in records:
        if r.image_id in seen:
            raise SourceError(f"{what}: two images share the id {r.image_id!r} ({seen[r.image_id].sources[0]} and "
                              f"{r.sources[0]}); add the distinguishing field to --pattern or an image_id column")
        seen[r.image_id] = r
    return records
