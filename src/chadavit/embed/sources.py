"""Where images come from: every input kind becomes a list of lazy :class:`ImageRecord` s.

Listing touches only file names and metadata (cheap even for 10,000+ images); pixels are read
when a record is read, in a worker thread, so memory stays bounded by the prefetch depth.

Input kinds (``--input-format``, detected automatically by default):

``pattern``   a folder of one-file-per-channel images grouped by ``--pattern "{well}_{site}_{channel}.tif"``
``files``     a folder (or a single file) of multi-channel TIFF / OME-TIFF / PNG images
``csv``       a CSV listing the channel files of each image (CellProfiler ``FileName_X``/``PathName_X``
              columns, or one column per channel holding paths, or a ``path`` column of multi-channel files)
``ome-zarr``  an OME-Zarr image, plate, or a folder of ``*.zarr`` stores
``dataset``   a chadavit dataset directory (:func:`chadavit.open_dataset`)
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chadavit.data.formats import (
    VENDOR_SUFFIXES,
    Field,
    format_suffix,
    list_fields,
    list_microscope_files,
    uses_bioio,
)
from chadavit.data.guess_pattern import channel_grouping_hint
from chadavit.data.listing import Unreadable, utf8
from chadavit.data.readers import (
    IMAGE_SUFFIXES,
    ImageFiles,
    ImageReadError,
    group_pattern_files,
    list_image_files,
    ome_tiff_channel_names,  # noqa: F401 - re-exported: callers import it from here
    read_image_with_names,
)
from chadavit.errors import ChadavitError

log = logging.getLogger("chadavit.embed")

INPUT_FORMATS = ("auto", "pattern", "files", "csv", "ome-zarr", "dataset")

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


# ---------------------------------------------------------------------------------------------- metadata
_FIELD_NAMES = {"plate": "Plate", "barcode": "Plate", "well": "Well", "site": "Site", "field": "Site", "fov": "Site",
                "f": "Site", "s": "Site", "row": "Row", "col": "Column", "column": "Column", "folder": "Folder"}

_NAME_CONVENTIONS = [
    # Cellomics / MetaXpress export: ..._D03f00d1
    re.compile(r"(?:^|[_\-\s])(?P<well>[A-Pa-p]\d{2})f(?P<site>\d{1,3})d\d"),
    # ImageXpress: ..._B02_s3_w1...
    re.compile(r"(?:^|[_\-\s])(?P<well>[A-Pa-p]\d{2})_s(?P<site>\d+)"),
    # Operetta / Opera Phenix: r02c05f03p01-ch1sk1fk1fl1
    re.compile(r"r(?P<row>\d{2})c(?P<col>\d{2})f(?P<site>\d{2})"),
    # row-column with a separator: 01-A-01-00 (e.g. Vitra), A-01
    re.compile(r"(?:^|[_\-\s])(?P<row>[A-Pa-p])-(?P<col>\d{1,2})(?=$|[_\-\s.])"),
    # a bare well token: ..._C20_w2...
    re.compile(r"(?:^|[_\-\s])(?P<well>[A-Pa-p]\d{2})(?=$|[_\-\s.])"),
]


def _norm_well(well: str) -> str:
    m = re.fullmatch(r"([A-Za-z]+)0*(\d+)", well.strip())
    return f"{m.group(1).upper()}{int(m.group(2)):02d}" if m else well


def _norm_site(site: str) -> str:
    return str(int(site)) if site.isdigit() else site


def parse_name_metadata(name: str) -> dict[str, str]:
    """Well and site from common plate-reader file naming conventions (empty when none matches)."""
    for rx in _NAME_CONVENTIONS:
        m = rx.search(name)
        if not m:
            continue
        g = m.groupdict()
        out: dict[str, str] = {}
        if g.get("well"):
            out["Well"] = _norm_well(g["well"])
        elif g.get("row") and g.get("col"):
            row = g["row"]
            row = chr(ord("A") + int(row) - 1) if row.isdigit() else row.upper()
            out["Well"] = f"{row}{int(g['col']):02d}"
        if g.get("site"):
            out["Site"] = _norm_site(g["site"])
        return out
    return {}


def fields_to_metadata(fields: dict[str, str], name_for_guess: str | None = None) -> dict[str, str]:
    """Pattern fields (``{plate}``, ``{well}``, ``{site}``, anything else) to ``Metadata_`` keys."""
    out: dict[str, str] = {}
    for k, v in fields.items():
        key = _FIELD_NAMES.get(k.lower(), k[:1].upper() + k[1:])
        out[key] = _norm_well(v) if key == "Well" else _norm_site(v) if key == "Site" else v
    if "Well" not in out and "Row" in out and "Column" in out:
        row = out["Row"]
        row = chr(ord("A") + int(row) - 1) if row.isdigit() else row.upper()
        out["Well"] = f"{row}{int(out['Column']):02d}" if out["Column"].isdigit() else f"{row}{out['Column']}"
    if name_for_guess and "Well" not in out:
        for k, v in parse_name_metadata(name_for_guess).items():
            out.setdefault(k, v)
    return out


# ---------------------------------------------------------------------------------------------- readers
def _files_reader(files: ImageFiles) -> Reader:
    def read(names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        order = list(names) if names is not None else sorted(files.channels, key=natural_key)
        return files.read(order)

    return read


def _select(arr: np.ndarray, have: list[str], names: Sequence[str] | None, what: str) -> tuple[np.ndarray, list[str]]:
    if names is None:
        return arr, have
    missing = [n for n in names if n not in have]
    if missing:
        raise ImageReadError(f"{what}: missing channel(s) {missing}; it has {have}")
    return arr[[have.index(n) for n in names]], list(names)


def _multichannel_reader(path: Path) -> Reader:
    def read(names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        arr, have = read_image_with_names(path)
        return _select(arr, have, names, str(path))

    return read


# ---------------------------------------------------------------------------------------------- sources
def _unique(records: list[ImageRecord], what: str) -> list[ImageRecord]:
    seen: dict[str, ImageRecord] = {}
    for r in records:
        if r.image_id in seen:
            raise SourceError(f"{what}: two images share the id {r.image_id!r} ({seen[r.image_id].sources[0]} and "
                              f"{r.sources[0]}); add the distinguishing field to --pattern or an image_id column")
        seen[r.image_id] = r
    return records


def pattern_source(folder: str | Path, pattern: str, recursive: bool = True) -> list[ImageRecord]:
    """One-file-per-channel images grouped by ``pattern``; every image is read with the union of channel names."""
    try:
        grouping = group_pattern_files(folder, pattern, recursive=recursive)
    except ImageReadError as exc:
        raise SourceError(str(exc)) from exc
    groups = grouping.images
    if not groups:
        raise SourceError(f"{folder}: no file matches the pattern {pattern!r} ({grouping.summary(folder)})")
    log.log(logging.WARNING if grouping.unmatched else logging.INFO, "--pattern %s: %s", pattern,
            grouping.summary(folder))
    for p in grouping.unreadable:
        log.warning("%s", p.message)
    channels = sorted({c for g in groups for c in g.channels}, key=natural_key)
    records = []
    for g in groups:
        first = next(iter(g.channels.values()))
        records.append(ImageRecord(
            image_id=g.image_id,
            sources=tuple(str(g.channels[c]) for c in sorted(g.channels, key=natural_key)),
            read=_files_reader(g),
            channel_names=list(channels),
            metadata=fields_to_metadata(dict(g.key), first.name),
        ))
    return _unique(records + unreadable_records(grouping.unreadable), str(folder))


def _field_reader(fld: Field) -> Reader:
    def read(names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        arr, have = fld.read()
        return _select(arr, have, names, f"{fld.path} scene {fld.scene_index}")

    return read


def files_source(path: str | Path, recursive: bool = True) -> list[ImageRecord]:
    """Multi-channel image files (channel names from OME-XML, else ``ch0``, ``ch1``, ...).

    ND2, CZI, LIF (and OME-TIFF with the ``formats`` extra) give one record per scene and timepoint,
    with channel names from the file's metadata (:mod:`chadavit.data.formats`).
    """
    p = Path(path)
    problems: list[Unreadable] = []
    if p.is_file():
        files, root = [p], p.parent
    else:
        try:
            files, root = sorted(set(list_image_files(p, recursive=recursive, problems=problems))
                                 | set(list_microscope_files(p, recursive=recursive, problems=problems))), p
        except ImageReadError as exc:
            raise SourceError(str(exc)) from exc
    for problem in {u.path: u for u in problems}.values():
        log.warning("%s", problem.message)
    if not files and problems:
        raise SourceError(f"{p}: no image file could be listed; {problems[0].message}")
    if not files:
        raise SourceError(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES + VENDOR_SUFFIXES)}) found")
    records = []
    for f in files:
        rel = f.relative_to(root)
        suffix = format_suffix(f)
        image_id = rel.as_posix()[: -len(suffix)] if suffix else rel.with_suffix("").as_posix()
        if uses_bioio(f):
            for fld in list_fields(f):
                records.append(ImageRecord(image_id=image_id + fld.suffix_id, sources=(str(f),),
                                           read=_field_reader(fld),
                                           metadata={**fields_to_metadata({}, f.name), **fld.metadata()}))
            continue
        records.append(ImageRecord(image_id=image_id, sources=(str(f),), read=_multichannel_reader(f),
                                   metadata=fields_to_metadata({}, f.name)))
    return _unique(records + unreadable_records(problems), str(p))


_ID_COLUMNS = ("image_id", "Metadata_ImageId", "ImageId", "ImageID")
_PATH_COLUMNS = ("path", "file", "filename", "FileName", "Path")


def _looks_like_paths(values: list[str]) -> bool:
    vals = [v for v in values if v]
    return bool(vals) and all(Path(v).suffix.lower() in IMAGE_SUFFIXES for v in vals)


def csv_source(path: str | Path) -> list[ImageRecord]:
    """Images listed in a CSV (relative paths are resolved against the CSV's folder).

    Accepted layouts: CellProfiler LoadData (``FileName_<Channel>`` with optional ``PathName_<Channel>``);
    one column per channel whose cells are image paths; or a ``path`` column of multi-channel files.
    ``Metadata_*`` and other non-path columns are carried to the output as ``Metadata_`` columns.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p}: CSV file not found")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, sep=None if p.suffix.lower() == ".tsv" else ",",
                         engine="python" if p.suffix.lower() == ".tsv" else "c")
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"{p}: unreadable CSV ({type(exc).__name__}: {exc})") from exc
    if df.empty:
        raise SourceError(f"{p}: the CSV lists no images")
    base = p.parent
    cols = list(df.columns)

    def resolve(v: str, folder: str = "") -> Path:
        q = Path(folder) / v if folder else Path(v)
        return q if q.is_absolute() else base / q

    channel_cols: dict[str, tuple[str, str | None]] = {}
    for c in cols:
        if c.startswith("FileName_"):
            ch = c[len("FileName_"):]
            channel_cols[ch] = (c, f"PathName_{ch}" if f"PathName_{ch}" in cols else None)
    multi_col = None
    if not channel_cols:
        multi_col = next((c for c in _PATH_COLUMNS if c in cols), None)
        if multi_col is None:
            for c in cols:
                if c in _ID_COLUMNS or c.startswith("Metadata_"):
                    continue
                if _looks_like_paths(df[c].tolist()):
                    channel_cols[c] = (c, None)
        if multi_col is None and not channel_cols:
            raise SourceError(f"{p}: no column lists image files; use FileName_<Channel> columns, one column of "
                              f"paths per channel, or a 'path' column (columns found: {cols})")
    used = {x for fc, pc in channel_cols.values() for x in (fc, pc) if x} | ({multi_col} if multi_col else set())
    meta_cols = [c for c in cols if c not in used and c not in _ID_COLUMNS]
    id_col = next((c for c in _ID_COLUMNS if c in cols), None)
    channels = list(channel_cols)
    records = []
    for i, row in enumerate(df.to_dict("records")):
        meta = {(c[len("Metadata_"):] if c.startswith("Metadata_") else c): row[c] for c in meta_cols}
        meta = {("Site" if k.lower() in ("site", "field") else k[:1].upper() + k[1:]): v for k, v in meta.items()}
        if multi_col is not None:
            f = resolve(row[multi_col])
            rec = ImageRecord(image_id="", sources=(str(f),), read=_multichannel_reader(f), metadata=meta)
            first = f
        else:
            files = ImageFiles(key={}, channels={ch: resolve(row[fc], row[pc] if pc else "")
                                                 for ch, (fc, pc) in channel_cols.items() if row[fc]})
            first = next(iter(files.channels.values()), None)
            if first is None:
                files.key = {"row": str(i)}
            rec = ImageRecord(image_id="", sources=tuple(str(v) for v in files.channels.values()),
                              read=_files_reader(files), channel_names=list(channels), metadata=meta)
        if "Well" not in meta and first is not None:
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
    return _unique(records, str(p))


def ome_zarr_source(path: str | Path) -> list[ImageRecord]:
    """Every field of an OME-Zarr image, plate (plate/well/site kept), or folder of ``*.zarr`` stores."""
    from chadavit.data.ome_zarr import find_ome_zarr_images

    try:
        images = find_ome_zarr_images(path)
    except ImageReadError as exc:
        raise SourceError(str(exc)) from exc
    records = []
    for im in images:
        def read(names: Sequence[str] | None, im=im) -> tuple[np.ndarray, list[str]]:  # noqa: ANN001
            arr, have = im.read()
            return _select(arr, have, names, im.source)

        meta = {k: v for k, v in (("Plate", im.plate), ("Well", im.well), ("Site", im.site)) if v is not None}
        records.append(ImageRecord(image_id=im.image_id, sources=(im.source,), read=read,
                                   channel_names=list(im.channel_names) if im.channel_names else None, metadata=meta))
    return _unique(records, str(path))


def dataset_source(path: str | Path) -> list[ImageRecord]:
    """Images of a chadavit dataset directory, with its extra manifest columns as metadata."""
    from chadavit.data.dataset import REQUIRED_COLUMNS, DatasetError, open_dataset

    try:
        ds = open_dataset(path)
    except DatasetError as exc:
        raise SourceError(str(exc)) from exc
    extra_cols = [c for c in ds.manifest.columns if c not in REQUIRED_COLUMNS]
    records = []
    for i, row in enumerate(ds.manifest.to_dict("records")):
        have = [str(n) for n in row["channel_names"]]

        def read(names: Sequence[str] | None, i=i, have=have) -> tuple[np.ndarray, list[str]]:  # noqa: ANN001
            return _select(ds.read(i), have, names, f"{ds.path} image {i}")

        meta = fields_to_metadata({c: str(row[c]) for c in extra_cols if row[c] is not None and str(row[c]) != ""})
        if row.get("imaging_method"):
            meta.setdefault("ImagingMethod", str(row["imaging_method"]))
        records.append(ImageRecord(image_id=str(row["image_id"]), sources=(str(row["source"]) or f"{ds.path}#{i}",),
                                   read=read, channel_names=have, metadata=meta))
    if not records:
        raise SourceError(f"{path}: the dataset holds no images")
    return _unique(records, str(path))


def detect_format(path: str | Path, pattern: str | None = None) -> str:
    """Guess the input kind from what ``path`` is (see the module docstring)."""
    from chadavit.data.ome_zarr import is_ome_zarr

    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: input not found")
    if p.is_file():
        if p.suffix.lower() in (".csv", ".tsv"):
            return "csv"
        if p.suffix.lower() in IMAGE_SUFFIXES or format_suffix(p):
            return "files"
        raise SourceError(f"{p}: unsupported input file; give a folder, an image, a CSV, an OME-Zarr or a dataset")
    if (p / "dataset.json").is_file():
        return "dataset"
    if is_ome_zarr(p):
        return "ome-zarr"
    if pattern:
        return "pattern"
    try:
        children = list(p.iterdir())
    except OSError as exc:
        raise SourceError(f"{utf8(str(p))}: cannot list this folder ({exc.strerror or exc})") from exc
    if any(is_ome_zarr(c) for c in children) and not any(c.suffix.lower() in IMAGE_SUFFIXES for c in children):
        return "ome-zarr"
    return "files"


def open_source(path: str | os.PathLike[str], input_format: str = "auto", pattern: str | None = None,
                recursive: bool = True) -> list[ImageRecord]:
    """List the images of ``path`` as records (no pixels are read)."""
    if input_format not in INPUT_FORMATS:
        raise SourceError(f"unknown input format {input_format!r}; choose one of {', '.join(INPUT_FORMATS)}")
    fmt = detect_format(path, pattern) if input_format == "auto" else input_format
    if fmt == "pattern":
        if not pattern:
            raise SourceError("--input-format pattern needs --pattern, e.g. \"{well}_{site}_{channel}.tif\"")
        return pattern_source(path, pattern, recursive)
    if pattern:
        raise SourceError(f"--pattern only applies to folders of one-file-per-channel images, not to {fmt} input")
    if fmt == "files":
        records = files_source(path, recursive)
        if input_format == "auto" and Path(path).is_dir() and (hint := channel_grouping_hint(path, [
                r.sources[0] for r in records if len(r.sources) == 1])):
            log.warning("%s", hint)
        return records
    if fmt == "csv":
        return csv_source(path)
    if fmt == "ome-zarr":
        return ome_zarr_source(path)
    return dataset_source(path)
