"""Which images a ``--shard i/n`` run embeds, and what it records so that ``embed merge`` can check it.

The images of shard ``i`` are those whose image id hashes to ``i`` mod ``n`` (:mod:`chadavit.sharding`,
the rule of ``idr build``): every machine lists the input, computes the same split and embeds its
part, without talking to the others. Each shard keeps the position of its images in the *whole*
listing (``Metadata_ImageIndex``), so the merged table can be sorted as a single run would sort it.
A shard's output records how many images the whole listing had, a digest of their ids, and how many
were its own: the merge uses these to prove that the shards saw the same input and that no image is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from chadavit.sharding import parse_shard, shard_of

T = TypeVar("T")

SHARD_KEY = "shard"  # in the run settings: "i/n" (absent for an unsharded run)
LISTING_IMAGES_KEY = "listing_images"
LISTING_DIGEST_KEY = "listing_digest"
SHARD_IMAGES_KEY = "shard_images"


def listing_digest(image_ids: Sequence[str]) -> str:
    """A short digest of the ids of the whole listing, in order: equal digests = the same input listing."""
    h = hashlib.sha256()
    for i in image_ids:
        h.update(i.encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def select_shard(items: Sequence[tuple[int, T]], ids: Sequence[str], shard: tuple[int, int]) -> list[tuple[int, T]]:
    """The ``(index, item)`` pairs whose id (``ids[k]`` for ``items[k]``) falls in ``shard``."""
    i, n = shard
    if n == 1:
        return list(items)
    return [it for it, key in zip(items, ids, strict=True) if shard_of(key, n) == i]


def shard_metadata(all_ids: Sequence[str], n_shard_images: int) -> dict[str, Any]:
    """What a sharded run writes into its output's key-value metadata for the merge to check."""
    return {LISTING_IMAGES_KEY: len(all_ids), LISTING_DIGEST_KEY: listing_digest(all_ids),
            SHARD_IMAGES_KEY: n_shard_images}


def shard_out_path(out: str | Path, shard: tuple[int, int]) -> Path:
    """Where process ``i`` of ``n`` writes its shard when one command runs every shard (torchrun)."""
    out = Path(out)
    stem = out.name.removesuffix(".parquet")
    i, n = shard
    width = len(str(n - 1))
    return out.with_name(f"{stem}.shards") / f"{i:0{width}d}-of-{n}.parquet"


__all__ = ["SHARD_KEY", "listing_digest", "parse_shard", "select_shard", "shard_metadata", "shard_out_path"]
