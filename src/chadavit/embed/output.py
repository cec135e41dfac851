"""Resumable output: atomic Parquet parts with their done-lists, the errors table, final assembly, AnnData.

While a run is going, ``OUT.parts/`` holds ``run.json`` (the settings that shape the features) and
``part-NNNNN.parquet`` files. Each part appears by an atomic rename and records, in its Parquet
key-value metadata, the ids of the images it completes (images with zero crops included), so a
part and its done-list can never disagree. A re-run skips every image listed in a part; the final
``OUT`` is assembled from the parts only when the run gets to the end.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chadavit.atomic import replace_synced
from chadavit.errors import ChadavitError
from chadavit.locks import WriteLock, lock_file, remove_stale_temps

if TYPE_CHECKING:
    from chadavit.models.output import EncoderOutput

DONE_KEY = b"chadavit.embed.done"
SORT_LIMIT_BYTES = 1 << 30  # outputs up to this size are sorted as a whole when assembled
SETTINGS_KEY = b"chadavit.embed"
WEIGHTS_KEY = "weights_digest"  # run setting: chadavit.models.io.weights_digest of the model as loaded
INT_COLUMNS = ("ImageIndex", "ImageHeight", "ImageWidth", "CropIndex", "CropY0", "CropX0", "CropY1", "CropX1",
               "NucleusArea", "NucleusLabel", "NumCrops", "CPTouchesBorder")
FLOAT_COLUMNS = ("NucleusY", "NucleusX")
LEAD_COLUMNS = ("ImageId", "ImageIndex", "Plate", "Well", "Site")
TAIL_COLUMNS = ("Channels", "SourceChannels", "Source", "ImageHeight", "ImageWidth", "CropMode", "NumCrops",
                "CropIndex", "CropY0", "CropX0", "CropY1", "CropX1", "NucleusY", "NucleusX", "NucleusArea",
                "NucleusLabel", "CPTouchesBorder", "CPError")
ERROR_COLUMNS = ("image_id", "image_index", "level", "stage", "error", "message", "sources")


class EmbedError(ChadavitError, RuntimeError):
    """The run cannot start or continue (bad option, conflicting previous run); the message says why."""


def metadata_type(name: str) -> pa.DataType:
    if name in INT_COLUMNS:
        return pa.int64()
    if name in FLOAT_COLUMNS:
        return pa.float64()
    return pa.string()


def rows_to_table(meta_rows: Sequence[dict[str, Any]], features: dict[str, Any]) -> pa.Table:
    """``Metadata_<key>`` columns from ``meta_rows`` (typed, missing keys null), then the feature groups in order:
    an array gives ``<prefix>_<j>`` columns, a DataFrame its own (already prefixed) column names, e.g. ``cp_``."""
    keys: list[str] = [k for k in LEAD_COLUMNS]
    extra = sorted({k for r in meta_rows for k in r} - set(LEAD_COLUMNS) - set(TAIL_COLUMNS))
    keys += extra + [k for k in TAIL_COLUMNS if any(k in r for r in meta_rows)]
    arrays, names = [], []
    for k in keys:
        t = metadata_type(k)
        vals = [r.get(k) for r in meta_rows]
        if t == pa.string():
            vals = [None if v is None else str(v) for v in vals]
        arrays.append(pa.array(vals, type=t))
        names.append(f"Metadata_{k}")
    for prefix, mat in features.items():
        if hasattr(mat, "columns"):  # named columns (CellProfiler measurements); NaN stays NaN
            for name in mat.columns:
                arrays.append(pa.array(np.asarray(mat[name], dtype=np.float32)))
                names.append(str(name))
            continue
        mat = np.asarray(mat, dtype=np.float32).reshape(len(meta_rows), -1)
        for j in range(mat.shape[1]):
            arrays.append(pa.array(mat[:, j]))
            names.append(f"{prefix}_{j}")
    return pa.Table.from_arrays(arrays, names=names)


def lock_output(out: Path, *others: str | os.PathLike[str] | None) -> WriteLock:
    """Hold ``out`` against a second run (embed or merge), then delete the temp files killed runs left.

    Removed under the lock: ``.OUT.tmp-PID``, ``.OUT.errors.csv.tmp-PID`` and those of ``others`` (an
    ``--h5ad`` file); no live process can be writing them, and a killed merge leaves hundreds of MB.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_file(out, " (another chadavit embed or embed merge with this output)")
    stem = out.name.removesuffix(".parquet")
    remove_stale_temps(out.parent, [out.name, f"{stem}.errors.csv"])
    for other in others:
        if other:
            remove_stale_temps(Path(other).parent, [Path(other).name])
    return lock


def channel_means(out: EncoderOutput, names: tuple[tuple[str, ...], ...] | None) -> list[dict[str, np.ndarray]]:
    """``{channel name: (D,)}`` per image: the mean patch token of each channel (columns ``chan_<name>_<j>``)."""
    if getattr(out, "channel_names", None) is None:
        out.channel_names = names
    return [{k: v.float().cpu().numpy() for k, v in d.items()} for d in out.per_channel_by_name()]


def stack_blocks(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Row blocks of several images as one matrix per block; a block an image lacks (a channel it does not
    have) is NaN in its rows. DataFrame blocks (``cp_`` measurements) are stacked by rows, columns united."""
    keys = list(dict.fromkeys(k for f in parts for k in f))
    out = {}
    for k in keys:
        blocks = [f[k] for f in parts if k in f]
        if hasattr(blocks[0], "columns"):  # named columns (CellProfiler): by rows, with the union of columns
            import pandas as pd

            out[k] = pd.concat(blocks, ignore_index=True, sort=False)
            continue
        dim = blocks[0].shape[1]
        out[k] = np.concatenate([f[k] if k in f else np.full((len(next(iter(f.values()))), dim), np.nan, np.float32)
                                 for f in parts])
    return out


class RunStore:
    """The ``OUT.parts`` folder of one run: settings check, done-list, atomic parts, errors.

    Open it only while holding :func:`lock_output` for ``OUT``.
    """

    def __init__(self, out: str | os.PathLike[str], settings: dict[str, Any], overwrite: bool = False) -> None:
        self.out = Path(out)
        self.dir = self.out.with_name(self.out.name + ".parts")
        self.settings = settings
        if overwrite and self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        run_json = self.dir / "run.json"
        finished_any = any(self.dir.glob("part-*.parquet"))
        if run_json.is_file():
            previous = json.loads(run_json.read_text())
            diff = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            if diff and not finished_any:  # nothing was finished with the old settings: nothing to protect
                run_json.unlink()
            elif WEIGHTS_KEY in diff:
                raise EmbedError(f"{self.dir} holds an unfinished run made with other weights (digest "
                                 f"{previous.get(WEIGHTS_KEY)}, now {settings.get(WEIGHTS_KEY)}): the model behind "
                                 f"--model {settings.get('model')} changed since, and resuming would mix two models "
                                 "in one table; pin the weights (hf:...@REVISION, a copied checkpoint) or pass "
                                 "--overwrite to start again")
            elif diff:
                detail = "; ".join(f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}" for k in diff)
                raise EmbedError(f"{self.dir} holds an unfinished run with different settings ({detail}); "
                                 "rerun with the same options to resume, or pass --overwrite to start again")
        if not run_json.is_file():
            tmp = run_json.with_name(f".run.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(settings, indent=2, sort_keys=True))
            replace_synced(tmp, run_json)
        remove_stale_temps(self.dir)  # the caller holds the output's lock (lock_output)
        self.parts = sorted(self.dir.glob("part-*.parquet"))
        self.done: set[str] = set()
        for p in self.parts:
            meta = pq.read_schema(p).metadata or {}
            self.done.update(json.loads(meta.get(DONE_KEY, b"[]")))
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in self.parts), default=-1)

    def commit(self, table: pa.Table | None, done_ids: Iterable[str]) -> Path | None:
        """Write one part (rows may be empty) that marks ``done_ids`` finished, atomically."""
        ids = [str(i) for i in done_ids]
        if not ids:
            return None
        if table is None:
            table = pa.table({"Metadata_ImageId": pa.array([], pa.string())})
        meta = dict(table.schema.metadata or {})
        meta[DONE_KEY] = json.dumps(ids).encode()
        table = table.replace_schema_metadata(meta)
        path = self.dir / f"part-{self._next:05d}.parquet"
        tmp = self.dir / f".{path.name}.tmp-{os.getpid()}"
        pq.write_table(table, tmp)
        replace_synced(tmp, path)
        self._next += 1
        self.parts.append(path)
        self.done.update(ids)
        return path

    def write_errors(self, errors: Sequence[dict[str, Any]], path: Path | None = None) -> Path:
        import pandas as pd

        path = path or self.dir / "errors.csv"
        df = pd.DataFrame(list(errors), columns=list(ERROR_COLUMNS))
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        df.to_csv(tmp, index=False)
        replace_synced(tmp, path)
        return path

    def assemble(self, extra_metadata: dict[str, Any] | None = None, sort_limit_bytes: int = SORT_LIMIT_BYTES,
                 keep_empty: bool = False) -> int:
        """Join the parts into ``OUT``, rows sorted by image then crop; returns the row count.

        Outputs up to ``sort_limit_bytes`` (in memory) are sorted as a whole; larger ones are streamed
        through a k-way merge of the parts (each sorted; a part is read when the merge reaches its first
        image), so memory holds the few parts that overlap, not the output.
        """
        if not sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts):
            if keep_empty:  # a shard without rows still proves to `embed merge` that it ran (its settings, listing)
                meta = {SETTINGS_KEY: json.dumps({**self.settings, **(extra_metadata or {})}).encode()}
                empty = pa.table({"Metadata_ImageId": pa.array([], pa.string())}).replace_schema_metadata(meta)
                tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
                pq.write_table(empty, tmp)
                replace_synced(tmp, self.out)
            return 0  # no rows: no output file at all (never a 0-row, 0-column Parquet)
        schemas = [(p, pq.read_schema(p)) for p in self.parts]
        fields: dict[str, pa.DataType] = {}
        for _, s in schemas:
            for f in s:
                if f.name not in fields or pa.types.is_null(fields[f.name]):
                    fields[f.name] = f.type
        meta_names = [n for n in fields if n.startswith("Metadata_")]
        feat_names = [n for n in fields if not n.startswith("Metadata_")]
        target = pa.schema([pa.field(n, fields[n]) for n in meta_names + feat_names],
                           metadata={SETTINGS_KEY: json.dumps({**self.settings, **(extra_metadata or {})}).encode()})
        order = []
        for p, s in schemas:
            if "Metadata_ImageIndex" in s.names:
                col = pq.read_table(p, columns=["Metadata_ImageIndex"]).column(0)
                order.append((min(col.to_pylist(), default=1 << 62), p))
            else:
                order.append((1 << 62, p))
        tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
        size = sum(pq.ParquetFile(p).metadata.num_rows * len(s.names) * 8 for p, s in schemas)
        whole = size <= sort_limit_bytes

        def conform(t: pa.Table) -> pa.Table:
            cols = [t.column(n).cast(fields[n]) if n in t.column_names else pa.nulls(t.num_rows, fields[n])
                    for n in target.names]
            return sort(pa.Table.from_arrays(cols, schema=target))

        def sort(t: pa.Table) -> pa.Table:
            keys = [(c, "ascending") for c in ("Metadata_ImageIndex", "Metadata_CropIndex") if c in t.column_names]
            return t.sort_by(keys) if keys and t.num_rows else t

        rows = 0
        # dictionary-encoding float features costs ~7x the write time and makes readers hold whole row groups
        dictionary = [n for n in target.names if n.startswith("Metadata_")]
        with pq.ParquetWriter(tmp, target, use_dictionary=dictionary) as writer:
            tables = (pq.read_table(p) for _, p in sorted(order, key=lambda t: (t[0], t[1].name)))
            if whole:
                tables = iter([sort(pa.concat_tables([conform(t) for t in tables if t.num_rows]))] if size else [])
            elif "Metadata_ImageIndex" in target.names:
                from chadavit.embed.kway import SortedSource, merge_sorted, rechunk

                def part(p: Path) -> Callable[[], Iterator[pa.Table]]:
                    return lambda: iter([conform(pq.read_table(p))])

                tables = rechunk(merge_sorted([SortedSource(first, part(p)) for first, p in order if first < 1 << 62]),
                                 65536)
            else:
                tables = (conform(t) for t in tables)
            for t in tables:
                if t.num_rows == 0:
                    continue
                writer.write_table(t, row_group_size=65536)
                rows += t.num_rows
        replace_synced(tmp, self.out)
        return rows

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def write_h5ad(parquet_path: str | os.PathLike[str], h5ad_path: str | os.PathLike[str]) -> Path:
    """Write the embeddings as AnnData.

    ``X`` = CLS features, ``obsm['X_cls']``, ``obsm['X_meanpatch']``, ``obsm['X_chan_<name>']`` (one per channel),
    ``obsm['X_cellprofiler']`` (the ``cp_`` columns, their names in ``uns['cellprofiler_columns']``; NaN where a
    cell could not be measured), ``obs`` = the metadata columns. Without a CLS block, ``X`` is the first block
    written and ``var`` names its columns.
    """
    try:
        import anndata as ad
    except ImportError as exc:
        raise EmbedError("--h5ad needs the optional dependency anndata: pip install 'chadavit[anndata]' "
                         "(or pip install anndata)") from exc
    import pandas as pd

    df = pd.read_parquet(parquet_path)
    meta = df[[c for c in df.columns if c.startswith("Metadata_")]].copy()
    for c in meta.columns:  # what anndata would do anyway, without its per-column messages
        if not pd.api.types.is_numeric_dtype(meta[c]):
            meta[c] = meta[c].astype("category")
    blocks: dict[str, list[str]] = {}
    chans = dict.fromkeys(c.rsplit("_", 1)[0] for c in df.columns if c.startswith("chan_"))
    for prefix in ("cls", "meanpatch", *chans):
        cols = [c for c in df.columns if c.startswith(f"{prefix}_") and c[len(prefix) + 1:].isdigit()]
        if cols:
            blocks[f"X_{prefix}"] = cols
    cp = [c for c in df.columns if c.startswith("cp_")]
    if cp:
        blocks["X_cellprofiler"] = cp
    obsm = {key: df[cols].to_numpy(np.float32) for key, cols in blocks.items()}
    x_key = "X_cls" if "X_cls" in blocks else next(iter(blocks), None)
    x = obsm[x_key] if x_key else np.zeros((len(df), 0), np.float32)
    crop = meta["Metadata_CropIndex"].astype(str) if "Metadata_CropIndex" in meta else pd.Series(["0"] * len(meta))
    meta.index = pd.Index([f"{i}#{c}" for i, c in zip(meta["Metadata_ImageId"].astype(str), crop)], dtype=object)
    var = pd.DataFrame(index=pd.Index(blocks[x_key] if x_key else [], dtype=object))
    adata = ad.AnnData(X=x, obs=meta, var=var, obsm=obsm, uns={"cellprofiler_columns": cp} if cp else None)
    out = Path(h5ad_path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    settings = getattr(ad, "settings", None)
    if settings is not None and hasattr(settings, "allow_write_nullable_strings"):
        with settings.override(allow_write_nullable_strings=True):
            adata.write_h5ad(tmp)
    else:
        adata.write_h5ad(tmp)
    replace_synced(tmp, out)
    return out
