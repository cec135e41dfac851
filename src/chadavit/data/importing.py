"""A folder of image files into a chadavit dataset (``chadavit data import``), and a dataset's summary
(``chadavit data info``).
"""

from __future__ import annotations

import sys
from pathlib import Path


def import_folder(src: Path, out: Path, pattern: str | None = None, multichannel: bool = False,
                  channel_map: dict[str, str] | None = None, source: str = "",
                  imaging_method: str = "") -> tuple[int, list[str]]:
    """Import ``src`` into the dataset ``out``; returns (images added, error messages of skipped files)."""
    from chadavit.data.dataset import DatasetError, DatasetWriter
    from chadavit.data.listing import Unreadable, utf8
    from chadavit.data.readers import ImageReadError, group_pattern_files, list_image_files, read_image_with_names

    channel_map = channel_map or {}
    source = source or src.name
    if not src.is_dir():
        raise DatasetError(f"{src}: source folder not found")
    added, errors = 0, []
    groups, files = [], []  # listed and checked before the dataset is created: a conflict writes nothing
    if pattern is not None:
        grouping = group_pattern_files(src, pattern)
        groups = grouping.images
        errors += [u.message for u in grouping.unreadable]
        if not groups:
            raise DatasetError(f"{src}: no file name matches the pattern {pattern!r} ({grouping.summary(src)})")
        print(f"--pattern {pattern}: {grouping.summary(src)}", file=sys.stderr)
    else:
        files = list_image_files(src, problems=[])  # a pre-check: problems are reported by the listing below
        if not files:
            raise DatasetError(f"{src}: no image files (.tif, .tiff, .png, .jpg, .jpeg)")
    with DatasetWriter(out, attrs={"imported_from": str(src)}) as writer:
        if pattern is not None:
            for g in groups:
                image_id = f"{source}/{g.image_id}"
                if image_id in writer:
                    continue
                order = [k for k in channel_map if k in g.channels]
                order += sorted(k for k in g.channels if k not in channel_map)
                try:
                    arr, keys = g.read(order)
                    names = [channel_map.get(k, k) for k in keys]
                    writer.add(arr, image_id, names, source=source, imaging_method=imaging_method,
                               files=[utf8(str(g.channels[k].relative_to(src))) for k in keys])
                    added += 1
                except (ImageReadError, ValueError, OSError) as exc:
                    errors.append(utf8(str(exc)))
        else:
            from chadavit.data.formats import format_suffix, import_microscope_file, list_microscope_files, uses_bioio

            problems: list[Unreadable] = []
            files = sorted(set(list_image_files(src, problems=problems))
                           | set(list_microscope_files(src, problems=problems)))
            errors += list({u.path: u.message for u in problems}.values())
            if not files:
                raise DatasetError(f"{src}: no image files (.tif, .tiff, .png, .jpg, .jpeg, .nd2, .czi, .lif)")
            for f in files:
                rel = utf8(f.relative_to(src).as_posix())
                image_id = f"{source}/{rel[: -len(format_suffix(f) or f.suffix)]}"  # a.ome.tif -> a, extra or not
                if uses_bioio(f):  # ND2, CZI, LIF, OME-TIFF: one image per scene, names from metadata
                    n, errs = import_microscope_file(writer, f, image_id, channel_map, source=source,
                                                     imaging_method=imaging_method, files=[rel])
                    added, errors = added + n, errors + errs
                    continue
                if image_id in writer:
                    continue
                try:
                    arr, found = read_image_with_names(f)  # OME-XML channel names, as embed reads them
                    named = found != [f"ch{k}" for k in range(len(found))]  # OME names: map by name only
                    names = [channel_map.get(n, n) if named else channel_map.get(str(k), channel_map.get(n, n))
                             for k, n in enumerate(found)]
                    writer.add(arr, image_id, names, source=source, imaging_method=imaging_method, files=[rel])
                    added += 1
                except (ImageReadError, ValueError, OSError) as exc:
                    errors.append(utf8(str(exc)))
    return added, errors


def dataset_summary(path: Path, verify: bool = False) -> tuple[str, int]:
    """The summary text and the number of images that differ from their checksum (0 unless ``verify``)."""
    from chadavit.data.dataset import open_dataset

    ds = open_dataset(path)
    m = ds.manifest
    lines = [f"dataset {path}", f"  images: {len(ds)}"]
    bad: list[str] = []
    if len(ds):
        lines.append(f"  planes: {int(m.n_channels.sum())}")
        counts = m.n_channels.value_counts().sort_index()
        lines.append("  channels per image: " + ", ".join(f"{int(k)}: {int(v)}" for k, v in counts.items()))
        lines.append("  dtypes: " + ", ".join(f"{k}: {int(v)}" for k, v in m.dtype.value_counts().items()))
        sizes = (m.height.astype(str) + "x" + m.width.astype(str)).value_counts()
        lines.append("  sizes: " + ", ".join(f"{k}: {int(v)}" for k, v in sizes.items()))
        lines.append("  sources:")
        for src, grp in m.groupby("source"):
            names = sorted({tuple(n) for n in grp.channel_names})
            shown = "; ".join(",".join(n) for n in names[:3]) + (" ..." if len(names) > 3 else "")
            lines.append(f"    {src or '(none)'}: {len(grp)} images, channels {shown}")
        known = ("image_id", "source", "imaging_method", "channel_names", "n_channels", "height", "width", "dtype",
                 "array", "plane_offset", "checksum")
        extra = [c for c in m.columns if c not in known]
        if extra:
            lines.append("  extra columns: " + ", ".join(extra))
    if verify:
        bad = ds.verify()
        lines.append(f"  verify: {'OK' if not bad else f'{len(bad)} image(s) differ from their checksum: {bad[:10]}'}")
    return "\n".join(lines), len(bad)
