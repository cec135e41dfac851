"""``chadavit embed merge``: join the shards of one screen into the table a single run would have written.

Every shard is checked before anything is written: one shard count, each index once and none
missing, the same run settings (model and its configuration, crops, normalisation, channels, ...),
the same input listing, every image in the shard its id hash assigns it to, no image twice, and
every image of each shard either in its table or in its errors file. Then the shards are merged
by ``Metadata_ImageIndex`` (their position in the input listing) and ``Metadata_CropIndex``,
reading each shard in record batches: memory is a few batches per shard, not the screen. The
shards' errors are combined into ``OUT.errors.csv``; both files appear by an atomic rename.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from chadavit.atomic import replace_synced
from chadavit.embed.kway import SortedSource, merge_sorted, rechunk
from chadavit.embed.output import ERROR_COLUMNS, SETTINGS_KEY, WEIGHTS_KEY, EmbedError, lock_output
from chadavit.embed.shards import LISTING_DIGEST_KEY, LISTING_IMAGES_KEY, SHARD_IMAGES_KEY, SHARD_KEY
from chadavit.sharding import parse_shard, shard_of

BATCH_ROWS = 8192  # rows read from each shard at a time
ROW_GROUP_ROWS = 65536  # rows per row group of the merged table (as a single run writes)
# keys of the output metadata that differ between shards by design
PER_SHARD_KEYS = frozenset({SHARD_KEY, SHARD_IMAGES_KEY})


class MergeError(EmbedError):
    """The shards cannot be merged (missing, duplicated, different settings); the message names the shard."""


@dataclass
class Shard:
    """One shard file and what its metadata says about it."""

    path: Path
    index: int
    count: int
    settings: dict[str, Any]
    schema: pa.Schema
    rows: int
    errors: pd.DataFrame
    ids: set[str] = field(default_factory=set)
    first_index: int = 0  # the smallest Metadata_ImageIndex (set by scan_shard)

    @property
    def name(self) -> str:
        return f"{self.path} (shard {self.index}/{self.count})"

    @property
    def errors_path(self) -> Path:
        return errors_path_for(self.path)


@dataclass
class MergeResult:
    out: Path
    n_shards: int
    n_rows: int
    n_images: int
    n_failed: int
    n_warnings: int
    errors_path: Path | None
    seconds: float


def errors_path_for(parquet: Path) -> Path:
    """``X.parquet`` -> ``X.errors.csv``, where ``chadavit embed`` writes the images it could not embed."""
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".errors.csv")


def _read_errors(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=list(ERROR_COLUMNS))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable CSV is one clear message
        raise MergeError(f"{path}: cannot read the errors file ({exc})") from exc
    missing = [c for c in ("image_id", "level") if c not in df.columns]
    if missing:
        raise MergeError(f"{path}: not a chadavit embed errors file (no column {missing[0]!r})")
    return df


def open_shard(path: str | os.PathLike[str]) -> Shard:
    """Read one shard's metadata (not its rows); a file that is not an embed output is a clear error."""
    p = Path(path)
    if not p.is_file():
        raise MergeError(f"{p}: no such file")
    try:
        pf = pq.ParquetFile(p)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear message
        raise MergeError(f"{p}: not a Parquet file ({exc})") from exc
    raw = (pf.schema_arrow.metadata or {}).get(SETTINGS_KEY)
    if raw is None:
        raise MergeError(f"{p}: not written by chadavit embed (no {SETTINGS_KEY.decode()} metadata)")
    settings = json.loads(raw)
    try:
        index, count = parse_shard(settings.get(SHARD_KEY))
    except ValueError as exc:
        raise MergeError(f"{p}: bad shard metadata ({exc})") from exc
    return Shard(p, index, count, settings, pf.schema_arrow, pf.metadata.num_rows, _read_errors(errors_path_for(p)))


def _describe_difference(key: str, a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        sub = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return "; ".join(f"{key}.{k} is {a.get(k)!r}, not {b.get(k)!r}" for k in sub[:3])
    return f"{key} is {a!r}, not {b!r}"


def check_headers(shards: Sequence[Shard]) -> list[Shard]:
    """Shard count, indices, settings and listing agree; returns the shards in index order."""
    if not shards:
        raise MergeError("embed merge: no shard files given")
    count = shards[0].count
    for s in shards:
        if s.count != count:
            raise MergeError(f"{s.path} is shard {s.index}/{s.count} but {shards[0].path} is shard "
                             f"{shards[0].index}/{count}: they come from different splits")
    by_index: dict[int, Shard] = {}
    for s in shards:
        if s.index in by_index:
            raise MergeError(f"shard {s.index}/{count} is given twice: {by_index[s.index].path} and {s.path}")
        by_index[s.index] = s
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        listed = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise MergeError(f"shard {missing[0]}/{count} is missing ({len(missing)} of {count} shards missing: "
                         f"{listed}); run chadavit embed with --shard {missing[0]}/{count} and merge again")
    ordered = [by_index[i] for i in range(count)]
    ref = ordered[0]
    for s in ordered[1:]:
        for key in sorted(set(ref.settings) | set(s.settings)):
            if key in PER_SHARD_KEYS or s.settings.get(key) == ref.settings.get(key):
                continue
            if key in (LISTING_IMAGES_KEY, LISTING_DIGEST_KEY):
                raise MergeError(f"{s.name} listed {s.settings.get(LISTING_IMAGES_KEY)} input images, {ref.name} "
                                 f"{ref.settings.get(LISTING_IMAGES_KEY)} (or other ones): the input changed "
                                 "between the shard runs; rerun the shards on the same input")
            if key == WEIGHTS_KEY:
                raise MergeError(f"{s.name} was embedded with other weights than {ref.name} (digest "
                                 f"{s.settings.get(key)}, not {ref.settings.get(key)}): the model changed between "
                                 "the shard runs; rerun the shards with the same weights")
            raise MergeError(f"{s.name} was run with other settings than {ref.name}: "
                             f"{_describe_difference(key, s.settings.get(key), ref.settings.get(key))}")
    return ordered


def _key_array(batch: pa.RecordBatch | pa.Table, name: str, where: str) -> np.ndarray:
    col = batch.column(name)
    if col.null_count:
        raise MergeError(f"{where}: {name} has null values; not a chadavit embed output")
    return np.asarray(col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array) else col.to_numpy())


def scan_shard(s: Shard) -> None:
    """Read the shard's image ids and indices (not its features): sorted, no image twice. Fills ``s.ids``."""
    if s.rows and "Metadata_ImageId" not in s.schema.names:
        raise MergeError(f"{s.name}: no Metadata_ImageId column; not a chadavit embed output")
    cols = [c for c in ("Metadata_ImageId", "Metadata_ImageIndex") if c in s.schema.names]
    last_index = -1
    last_id: str | None = None
    if s.rows:
        for batch in pq.ParquetFile(s.path).iter_batches(batch_size=65536, columns=cols):
            ids = batch.column(0).to_pylist()
            idx = _key_array(batch, "Metadata_ImageIndex", s.name) if len(cols) > 1 else np.zeros(len(ids), np.int64)
            if len(idx) and last_id is None:
                s.first_index = int(idx[0])
            if len(idx) and (idx[0] < last_index or (np.diff(idx) < 0).any()):
                raise MergeError(f"{s.name}: rows are not sorted by Metadata_ImageIndex; it was not written by "
                                 "chadavit embed --shard (rerun that shard)")
            for image_id, image_index in zip(ids, idx.tolist(), strict=True):
                if image_id == last_id:
                    if image_index != last_index:
                        raise MergeError(f"{s.name}: image {image_id!r} appears twice (at listing positions "
                                         f"{last_index} and {image_index})")
                    continue
                if image_id in s.ids:
                    raise MergeError(f"{s.name}: image {image_id!r} appears twice")
                if image_index == last_index and last_id is not None:
                    raise MergeError(f"{s.name}: images {last_id!r} and {image_id!r} share listing position "
                                     f"{image_index}")
                s.ids.add(image_id)
                last_id, last_index = image_id, image_index


def check_complete(s: Shard) -> None:
    """Every image the shard's run listed is in its table or its errors file, and no other."""
    err_ids = set(s.errors["image_id"])
    both = s.ids & set(s.errors.loc[s.errors["level"] == "error", "image_id"])
    if both:
        raise MergeError(f"{s.name}: image {min(both)!r} is both in the table and in its errors file "
                         f"{s.errors_path}")
    expected = s.settings.get(SHARD_IMAGES_KEY)
    accounted = len(s.ids | err_ids)
    if expected is not None and accounted != int(expected):
        if accounted < int(expected):
            raise MergeError(f"{s.name}: {int(expected) - accounted} of its {expected} images are neither in the "
                             f"table nor in its errors file {s.errors_path}")
        raise MergeError(f"{s.name}: holds {accounted} images but its run listed {expected}")


def check_shards(paths: Sequence[str | os.PathLike[str]]) -> list[Shard]:
    """Every check of the module docstring, reading only metadata and id columns; returns shards in order."""
    shards = check_headers([open_shard(p) for p in paths])
    for s in shards:
        scan_shard(s)
    count = len(shards)
    if count > 1:
        for s in shards:
            for image_id in s.ids:
                home = shard_of(image_id, count)
                if home != s.index:
                    if image_id in shards[home].ids:
                        raise MergeError(f"image {image_id!r} appears twice: in {shards[home].name} and in {s.name}")
                    raise MergeError(f"{s.name}: image {image_id!r} belongs to shard {home}/{count} (its id hash); "
                                     "was this file written with another --shard?")
    for s in shards:
        check_complete(s)
    return shards


# ---------------------------------------------------------------------------------------------- streaming merge
def target_schema(shards: Sequence[Shard], metadata: dict[bytes, bytes]) -> pa.Schema:
    """The union of the shards' columns, in order of first appearance (as a single run's assembly does)."""
    fields: dict[str, pa.DataType] = {}
    for s in shards:
        for f in s.schema:
            if f.name not in fields or pa.types.is_null(fields[f.name]):
                fields[f.name] = f.type
    meta = [n for n in fields if n.startswith("Metadata_")]
    feats = [n for n in fields if not n.startswith("Metadata_")]
    return pa.schema([pa.field(n, fields[n]) for n in meta + feats], metadata=metadata)


def _conform(batch: pa.RecordBatch, target: pa.Schema) -> pa.Table:
    names = batch.schema.names
    cols = [batch.column(names.index(f.name)).cast(f.type) if f.name in names else pa.nulls(batch.num_rows, f.type)
            for f in target]
    return pa.Table.from_arrays(cols, schema=target)


def merged_tables(shards: Sequence[Shard], target: pa.Schema, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """Rows of all shards in ``(ImageIndex, CropIndex)`` order, each shard read ``batch_rows`` at a time."""
    if not any(s.rows for s in shards):
        return iter(())
    if "Metadata_ImageIndex" not in target.names:
        raise MergeError(f"{shards[0].path}: no Metadata_ImageIndex column; not a chadavit embed output")

    def batches(s: Shard) -> Callable[[], Iterator[pa.Table]]:
        # a small read buffer, no pre-buffering, one thread: the reader holds a batch, not the shard's row group
        return lambda: (_conform(b, target) for b in pq.ParquetFile(s.path, buffer_size=1 << 16, pre_buffer=False)
                        .iter_batches(batch_size=batch_rows, use_threads=False))

    return merge_sorted([SortedSource(s.first_index, batches(s)) for s in shards if s.rows])


def write_merged(shards: Sequence[Shard], out: Path, batch_rows: int = BATCH_ROWS,
                 row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Stream the merged table into ``out`` (atomically); returns the number of rows."""
    ref = shards[0].settings
    meta = {k: v for k, v in ref.items() if k not in PER_SHARD_KEYS}
    meta["merged_shards"] = len(shards)
    target = target_schema(shards, {SETTINGS_KEY: json.dumps(meta).encode()})
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    rows = 0
    try:
        # dictionary encoding helps the repeated metadata strings only; on float features it costs ~7x the time
        dictionary = [n for n in target.names if n.startswith("Metadata_")]
        with pq.ParquetWriter(tmp, target, use_dictionary=dictionary) as writer:
            for chunk in rechunk(merged_tables(shards, target, batch_rows), row_group_rows):
                writer.write_table(chunk, row_group_size=row_group_rows)
                rows += chunk.num_rows
        replace_synced(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def write_merged_errors(shards: Sequence[Shard], path: Path) -> pd.DataFrame:
    """The shards' errors in one table, in listing order; written (atomically) only when there are any."""
    frames = [s.errors for s in shards if len(s.errors)]
    if not frames:
        path.unlink(missing_ok=True)
        return pd.DataFrame(columns=list(ERROR_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    order = pd.to_numeric(df.get("image_index"), errors="coerce") if "image_index" in df else None
    if order is not None:
        df = df.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
    df = df[[c for c in ERROR_COLUMNS if c in df.columns] + [c for c in df.columns if c not in ERROR_COLUMNS]]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.to_csv(tmp, index=False)
    replace_synced(tmp, path)
    return df


def merge_shards(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 overwrite: bool = False, batch_rows: int = BATCH_ROWS) -> MergeResult:
    """Check every shard, then write ``out`` and ``out``'s errors file; see the module docstring."""
    import time

    t0 = time.perf_counter()
    out_p = Path(out)
    if out_p.suffix.lower() != ".parquet":
        out_p = out_p.with_name(out_p.name + ".parquet")
    resolved = {Path(p).resolve() for p in paths}
    if out_p.resolve() in resolved:
        raise MergeError(f"{out_p}: the output is one of the shards; choose another --out")
    with lock_output(out_p):  # one merge (or embed) per output; a killed merge's temp file is removed
        if out_p.exists() and not overwrite:
            raise MergeError(f"{out_p} already exists; pass --overwrite to replace it")
        shards = check_shards(paths)
        rows = write_merged(shards, out_p, batch_rows)
        errors = write_merged_errors(shards, errors_path_for(out_p))
    n_failed = int((errors["level"] == "error").sum()) if len(errors) else 0
    return MergeResult(out_p, len(shards), rows, sum(len(s.ids) for s in shards), n_failed,
                       len(errors) - n_failed, errors_path_for(out_p) if len(errors) else None,
                       time.perf_counter() - t0)
