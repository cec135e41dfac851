"""Merge tables that are each sorted by an integer key into one sorted stream, with a few batches in memory.

Used twice: ``embed merge`` joins the shards of a screen (every shard spans the whole listing, so
all are read side by side), and a run assembles its parts when they are too large to sort in
memory (parts cover neighbouring images, so a part is opened only when the merge reaches its
first image and only a few are open at a time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

KEY = "Metadata_ImageIndex"
SORT_KEYS = ("Metadata_ImageIndex", "Metadata_CropIndex")


@dataclass
class SortedSource:
    """Tables sorted by ``KEY`` (each and across them), produced only when the merge reaches ``first``."""

    first: int  # the smallest key of the source
    tables: Callable[[], Iterator[pa.Table]]


class _Open:
    def __init__(self, source: SortedSource) -> None:
        self.it = source.tables()
        self.buf: pa.Table | None = None
        self.keys = np.zeros(0, np.int64)
        self.done = False

    def fill(self) -> None:
        while not self.done and (self.buf is None or self.buf.num_rows == 0):
            nxt = next(self.it, None)
            if nxt is None:
                self.done = True
            elif nxt.num_rows:
                self.buf = nxt
                self.keys = np.asarray(nxt.column(KEY).to_numpy())

    @property
    def rows(self) -> int:
        return 0 if self.buf is None else self.buf.num_rows

    def take_until(self, bound: int) -> pa.Table | None:
        """Remove and return the buffered rows whose key is at most ``bound``."""
        j = int(np.searchsorted(self.keys, bound, side="right"))
        if j == 0 or self.buf is None:
            return None
        out, self.buf, self.keys = self.buf.slice(0, j), self.buf.slice(j), self.keys[j:]
        return out


def merge_sorted(sources: Sequence[SortedSource]) -> Iterator[pa.Table]:
    """The rows of all sources in ``(ImageIndex, CropIndex)`` order (ties keep source order), as tables.

    Each step emits every buffered row whose key is at most the smallest key still to come from any
    source (the last buffered key of a source being read, the first key of one not opened yet), so
    no source is read more than one batch ahead of the others.
    """
    waiting = deque(sorted(sources, key=lambda s: s.first))
    active: list[_Open] = []
    while True:
        if not active:
            if not waiting:
                return
            active.append(_Open(waiting.popleft()))
        for a in active:
            a.fill()
        active = [a for a in active if a.rows or not a.done]
        if not active:
            continue
        ends = [int(a.keys[-1]) for a in active if a.rows and not a.done]
        starts = [int(a.keys[0]) for a in active if a.rows]
        bound = min(ends) if ends else np.iinfo(np.int64).max
        if waiting:
            if waiting[0].first <= min(starts, default=waiting[0].first):
                active.append(_Open(waiting.popleft()))  # it may hold the next rows: read it too
                continue
            bound = min(bound, waiting[0].first - 1)
        pieces = [p for p in (a.take_until(bound) for a in active) if p is not None]
        if not pieces:
            continue
        if len(pieces) == 1:
            yield pieces[0]
        else:
            table = pa.concat_tables(pieces)
            keys = [(k, "ascending") for k in SORT_KEYS if k in table.column_names]
            yield table.sort_by(keys)


def rechunk(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows as tables of exactly ``rows`` rows (the last one shorter): one row group each when written."""
    pending: list[pa.Table] = []
    n = 0
    for t in tables:
        pending.append(t)
        n += t.num_rows
        while n >= rows:
            chunk = pa.concat_tables(pending)
            yield chunk.slice(0, rows)
            rest = chunk.slice(rows)
            pending, n = ([rest] if rest.num_rows else []), rest.num_rows
    if n:
        yield pa.concat_tables(pending)
