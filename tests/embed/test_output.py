"""Resumable parts: atomic commits with done-lists, crash leftovers, assembly of parts with different columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from chadavit.embed.output import EmbedError, RunStore, rows_to_table


def table(ids: list[str], index: list[int], extra: dict | None = None):  # noqa: ANN201
    rows = [{"ImageId": i, "ImageIndex": k, "CropIndex": 0, "Well": None, **(extra or {})} for i, k in zip(ids, index)]
    return rows_to_table(rows, {"cls": np.arange(len(ids) * 2, dtype=np.float32).reshape(len(ids), 2)})


def test_parts_record_done_images_and_survive_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "e.parquet"
    store = RunStore(out, {"model": "m"})
    store.commit(table(["b", "c"], [1, 2], {"Compound": "x"}), ["b", "c", "empty_image"])
    (store.dir / ".part-00001.parquet.tmp-999").write_bytes(b"half written")  # a crash during the next write
    again = RunStore(out, {"model": "m"})
    assert again.done == {"b", "c", "empty_image"}
    assert not list(again.dir.glob(".part-*"))
    again.commit(table(["a"], [0]), ["a"])
    again.commit(table(["d", "aa"], [3, 0]), ["d", "aa"])  # a retried image (index 0) in a late part
    assert again.assemble() == 5
    t = pq.read_table(out)
    assert t.column("Metadata_ImageId").to_pylist() == ["a", "aa", "b", "c", "d"]  # sorted as a whole
    assert again.assemble(sort_limit_bytes=0) == 5  # streamed: a k-way merge of the parts, sorted all the same
    assert pq.read_table(out).column("Metadata_ImageId").to_pylist() == ["a", "aa", "b", "c", "d"]
    t = pq.read_table(out)
    assert t.column("Metadata_Compound").to_pylist() == [None, None, "x", "x", None]  # union, nulls where absent
    assert str(t.schema.field("Metadata_Well").type) == "string" and t.column_names[-2:] == ["cls_0", "cls_1"]
    with pytest.raises(EmbedError, match=r"different settings \(model: 'm' -> 'n'\)"):
        RunStore(out, {"model": "n"})
    assert RunStore(out, {"model": "n"}, overwrite=True).done == set()
