"""Images listed in a CSV: CellProfiler LoadData columns, one column of paths per channel, or a ``path`` column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chadavit.data.readers import IMAGE_SUFFIXES, ImageFiles
from chadavit.embed.name_metadata import parse_name_metadata
from chadavit.embed.records import ImageRecord, SourceError, files_reader, multichannel_reader, unique_ids

_ID_COLUMNS = ("image_id", "Metadata_ImageId", "ImageId", "ImageID")
_PATH_COLUMNS = ("path", "file", "filename", "FileName", "Path")


def _looks_like_paths(values: list[str]) -> bool:
    vals = [v for v in values if v]
    return bool(vals) and all(Path(v).suffix.lower() in IMAGE_SUFFIXES for v in vals)


def _read_table(p: Path) -> Any:
    import pandas as pd

    if not p.is_file():
        raise SourceError(f"{p}: CSV file not found")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, sep=None if p.suffix.lower() == ".tsv" else ",",
                         engine="python" if p.suffix.lower() == ".tsv" else "c")
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"{p}: unreadable CSV ({type(exc).__name__}: {exc})") from exc
    if df.empty:
        raise SourceError(f"{p}: the CSV lists no images")
    return df


def _file_columns(df: Any, p: Path) -> tuple[dict[str, tuple[str, str | None]], str | None]:
    """``({channel: (file column, folder column or None)}, None)``, or ``({}, column of multi-channel files)``."""
    cols = list(df.columns)
    channel_cols: dict[str, tuple[str, str | None]] = {}
    for c in cols:
        if c.startswith("FileName_"):
            ch = c[len("FileName_"):]
            channel_cols[ch] = (c, f"PathName_{ch}" if f"PathName_{ch}" in cols else None)
    if channel_cols:
        return channel_cols, None
    multi_col = next((c for c in _PATH_COLUMNS if c in cols), None)
    if multi_col is not None:
        return channel_cols, multi_col
    for c in cols:
        if c not in _ID_COLUMNS and not c.startswith("Metadata_") and _looks_like_paths(df[c].tolist()):
            channel_cols[c] = (c, None)
    if not channel_cols:
        raise SourceError(f"{p}: no column lists image files; use FileName_<Channel> columns, one column of "
                          f"paths per channel, or a 'path' column (columns found: {cols})")
    return channel_cols, None


def _metadata(row: dict[str, str], meta_cols: list[str]) -> dict[str, str]:
    meta = {(c[len("Metadata_"):] if c.startswith("Metadata_") else c): row[c] for c in meta_cols}
    return {("Site" if k.lower() in ("site", "field") else k[:1].upper() + k[1:]): v for k, v in meta.items()}


def _record(row: dict[str, str], i: int, base: Path, channel_cols: dict[str, tuple[str, str | None]],
            multi_col: str | None, meta: dict[str, str]) -> tuple[ImageRecord, Path | None]:
    """The record of one CSV row (its id still empty) and its first file."""
    def resolve(v: str, folder: str = "") -> Path:
        q = Path(folder) / v if folder else Path(v)
        return q if q.is_absolute() else base / q

    if multi_col is not None:
        f = resolve(row[multi_col])
        return ImageRecord(image_id="", sources=(str(f),), read=multichannel_reader(f), metadata=meta), f
    files = ImageFiles(key={}, channels={ch: resolve(row[fc], row[pc] if pc else "")
                                         for ch, (fc, pc) in channel_cols.items() if row[fc]})
    first = next(iter(files.channels.values()), None)
    if first is None:
        files.key = {"row": str(i)}
    return ImageRecord(image_id="", sources=tuple(str(v) for v in files.channels.values()),
                       read=files_reader(files), channel_names=list(channel_cols), metadata=meta), first


def csv_source(path: str | Path) -> list[ImageRecord]:
    """Images listed in a CSV (relative paths are resolved against the CSV's folder).

    Accepted layouts: CellProfiler LoadData (``FileName_<Channel>`` with optional ``PathName_<Channel>``);
    one column per channel whose cells are image paths; or a ``path`` column of multi-channel files.
    ``Metadata_*`` and other non-path columns are carried to the output as ``Metadata_`` columns.
    """
    p = Path(path)
    df = _read_table(p)
    channel_cols, multi_col = _file_columns(df, p)
    used = {x for fc, pc in channel_cols.values() for x in (fc, pc) if x} | ({multi_col} if multi_col else set())
    meta_cols = [c for c in df.columns if c not in used and c not in _ID_COLUMNS]
    id_col = next((c for c in _ID_COLUMNS if c in df.columns), None)
    records = []
    for i, row in enumerate(df.to_dict("records")):
        rec, first = _record(row, i, p.parent, channel_cols, multi_col, _metadata(row, meta_cols))
        if "Well" not in rec.metadata and first is not None:
            for k, v in parse_name_metadata(first.name).items():
                rec.metadata.setdefault(k, v)
        rec.image_id = row[id_col] if id_col else (first.stem if first is not None else f"row{i:06d}")
        records.append(rec)
    if not id_col and len({r.image_id for r in records}) != len(records):
        for i, r in enumerate(records):
            r.image_id = f"row{i:06d}"
    listed = [s for r in records for s in r.sources]
    if listed and not any(Path(s).is_file() for s in listed):
        raise SourceError(f"{p}: none of the {len(listed)} file(s) it lists exists (first: {listed[0]}); "
                          "paths are relative to the CSV's folder unless absolute")
    return unique_ids(records, str(p))
