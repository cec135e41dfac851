"""The k-way merge behind ``embed merge`` and the streamed assembly of large runs: sorted, nothing lost or doubled."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from chadavit.embed.kway import SortedSource, merge_sorted, rechunk


def source(idx: np.ndarray, tag: int, batch: int) -> SortedSource:
    crop = np.zeros(len(idx), np.int64)
    for k in range(1, len(idx)):  # crops of one image are numbered 0, 1, ...
        crop[k] = crop[k - 1] + 1 if idx[k] == idx[k - 1] else 0
    t = pa.table({"Metadata_ImageIndex": idx, "Metadata_CropIndex": crop, "tag": np.full(len(idx), tag)})
    return SortedSource(int(idx[0]), lambda: (t.slice(o, batch) for o in range(0, len(t), batch)))


def test_merge_of_interleaved_and_neighbouring_sources_is_the_full_sort() -> None:
    rng = np.random.default_rng(0)
    images = np.arange(400)
    owner = rng.integers(0, 5, len(images))  # like shards: every source spans the whole range
    crops = rng.integers(1, 4, len(images))
    sources = [source(np.repeat(images[owner == s], crops[owner == s]), s, batch=int(rng.integers(1, 9)))
               for s in range(5)]
    # like parts: neighbouring ranges that overlap a little
    sources += [source(np.sort(rng.integers(1000 + 50 * k, 1080 + 50 * k, 30)), 10 + k, 7) for k in range(6)]
    out = pa.concat_tables(list(rechunk(merge_sorted(sources[::-1]), 64)))
    expected = pa.concat_tables([t for s in sources for t in s.tables()]).sort_by(
        [("Metadata_ImageIndex", "ascending"), ("Metadata_CropIndex", "ascending")])
    assert out.num_rows == expected.num_rows
    assert out.column("Metadata_ImageIndex").to_pylist() == expected.column("Metadata_ImageIndex").to_pylist()
    assert out.column("Metadata_CropIndex").to_pylist() == expected.column("Metadata_CropIndex").to_pylist()
    assert next(rechunk(iter([out]), 64)).num_rows == 64
