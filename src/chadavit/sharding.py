"""The one rule that splits work into shards: ``i/n`` specs and a stable hash of an item's id.

Every machine computes the same split from the same listing without talking to the others, and
each item belongs to exactly one shard. ``chadavit idr build --shard`` and ``chadavit embed
--shard`` both use it, so a screen split one way is split the same way everywhere.
"""

from __future__ import annotations

import hashlib

from chadavit.errors import ChadavitError


class ShardSpecError(ChadavitError, ValueError):
    """A ``--shard`` value that is not ``i/n`` with ``0 <= i < n``."""


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` (0-based i) -> (i, n); ``None`` or ``""`` -> (0, 1)."""
    if not spec:
        return 0, 1
    try:
        i, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise ShardSpecError(f"--shard {spec!r}: expected i/n with 0 <= i < n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise ShardSpecError(f"--shard {spec!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return i, n


def shard_of(key: str, n: int) -> int:
    """The shard (``0 <= s < n``) that the item with id ``key`` belongs to: sha256 of the id, mod ``n``."""
    if n == 1:
        return 0
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % n
