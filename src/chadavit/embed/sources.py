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

Beside this module: the record and its channel readers (``records.py``), plate metadata from names and pattern
fields (``name_metadata.py``) and the CSV layouts (``csv_source.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

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
    ImageReadError,
    group_pattern_files,
    list_image_files,
    ome_tiff_channel_names,  # noqa: F401 - re-exported: callers import it from here
)
from chadavit.embed.csv_source import csv_source
from chadavit.embed.name_metadata import fields_to_metadata, parse_name_metadata  # noqa: F401 - public here
from chadavit.embed.records import (  # noqa: F401 - ImageRecord, SourceError, Reader: public names of this module
    ImageRecord,
    Reader,
    SourceError,
    files_reader,
    multichannel_reader,
    natural_key,
    select_channels,
    unique_ids,
    unreadable_records,
)

log = logging.getLogger("chadavit.embed")

INPUT_FORMATS = ("auto", "pattern", "files", "csv", "ome-zarr", "dataset")


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
            read=files_reader(g),
            channel_names=list(channels),
            metadata=fields_to_metadata(dict(g.key), first.name),
        ))
    return unique_ids(records + unreadable_records(grouping.unreadable), str(folder))


def _field_reader(fld: Field) -> Reader:
    def read(names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        arr, have = fld.read()
        return select_channels(arr, have, names, f"{fld.path} scene {fld.scene_index}")

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
        records.append(ImageRecord(image_id=image_id, sources=(str(f),), read=multichannel_reader(f),
                                   metadata=fields_to_metadata({}, f.name)))
    return unique_ids(records + unreadable_records(problems), str(p))


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
            return select_channels(arr, have, names, im.source)

        meta = {k: v for k, v in (("Plate", im.plate), ("Well", im.well), ("Site", im.site)) if v is not None}
        records.append(ImageRecord(image_id=im.image_id, sources=(im.source,), read=read,
                                   channel_names=list(im.channel_names) if im.channel_names else None, metadata=meta))
    return unique_ids(records, str(path))


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
            return select_channels(ds.read(i), have, names, f"{ds.path} image {i}")

        meta = fields_to_metadata({c: str(row[c]) for c in extra_cols if row[c] is not None and str(row[c]) != ""})
        if row.get("imaging_method"):
            meta.setdefault("ImagingMethod", str(row["imaging_method"]))
        records.append(ImageRecord(image_id=str(row["image_id"]), sources=(str(row["source"]) or f"{ds.path}#{i}",),
                                   read=read, channel_names=have, metadata=meta))
    if not records:
        raise SourceError(f"{path}: the dataset holds no images")
    return unique_ids(records, str(path))


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
