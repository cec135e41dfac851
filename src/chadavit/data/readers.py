"""Reading microscopy image files as ``(C, H, W)`` arrays and grouping per-channel files into images.

TIFF and OME-TIFF are read with ``tifffile``; PNG and JPEG with Pillow (16-bit PNGs stay uint16).
A filename pattern such as ``{well}_{site}_{channel}.tif`` groups one-file-per-channel folders:
every field except ``channel`` identifies the image, ``channel`` names the plane.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chadavit.data.listing import Unreadable, utf8, walk_files
from chadavit.errors import ChadavitError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
DEFAULT_MAX_PIXELS = 1 << 28  # values per image (C x H x W): 268 M, 512 MB as uint16; e.g. 5 x 7300 x 7300
_max_pixels: list[int] = [int(os.environ.get("CHADAVIT_MAX_PIXELS", DEFAULT_MAX_PIXELS))]


class ImageReadError(ChadavitError, ValueError):
    """An image file cannot be read or has an unusable layout; the message names the file."""


def set_max_pixels(n: int) -> None:
    """Raise (or lower) the largest image, in values ``C x H x W``, that a reader decodes (``--max-pixels``)."""
    if n < 1:
        raise ImageReadError(f"--max-pixels must be a positive integer, got {n}")
    _max_pixels[0] = int(n)


def check_pixels(shape: Sequence[int], source: object) -> None:
    """Refuse an image by its declared shape, before decoding: a 160 KB TIFF can declare 2 GB of pixels."""
    n = math.prod(int(d) for d in shape)
    if n > _max_pixels[0]:
        raise ImageReadError(f"{source}: {n:,} pixel values (shape {tuple(int(d) for d in shape)}) exceed the limit "
                             f"of {_max_pixels[0]:,}; raise it with --max-pixels (or CHADAVIT_MAX_PIXELS) if the "
                             "file is genuine")


def _to_chw(arr: np.ndarray, path: Path) -> np.ndarray:
    squeezed = np.squeeze(arr)
    if squeezed.ndim < 2 and arr.ndim >= 2 and arr.size == arr.shape[-2] * arr.shape[-1]:
        squeezed = arr.reshape(arr.shape[-2:])  # a 1-pixel-wide image keeps its two image axes (1x1 stays 1x1)
    arr = squeezed
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        # channels-last (H, W, C) for small trailing axes, as Pillow and most RGB TIFFs give
        if arr.shape[-1] <= 4 and arr.shape[0] > 4:
            return np.moveaxis(arr, -1, 0)
        return arr
    raise ImageReadError(f"{path}: cannot interpret an image with shape {arr.shape} as (C, H, W); "
                         "z-stacks and time series must be projected or split first")


def read_image_file(path: str | Path) -> np.ndarray:
    """Read one file as ``(C, H, W)`` in its stored dtype (uint8, uint16 or float)."""
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: file not found")
    suffix = p.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(p) as tif:
                series = tif.series[0]
                check_pixels(series.shape, p)
                arr = series.asarray()
                axes = series.axes
            if "C" in axes and "Y" in axes and "X" in axes:
                keep = [a for a in axes if a in "CYX"]
                for ax in [a for a in axes if a not in "CYX"]:
                    i = axes.index(ax)
                    if arr.shape[i] != 1:
                        raise ImageReadError(f"{p}: axis {ax!r} has length {arr.shape[i]}; only C, Y, X are supported")
                arr = arr.reshape([arr.shape[axes.index(a)] for a in keep])
                if keep != ["C", "Y", "X"]:
                    arr = np.transpose(arr, [keep.index(a) for a in "CYX"])
        elif suffix in (".png", ".jpg", ".jpeg"):
            from PIL import Image

            with Image.open(p) as im:
                check_pixels((len(im.getbands()), im.height, im.width), p)
                if im.mode == "P":
                    im = im.convert("L")
                arr = np.asarray(im)
                if arr.dtype == np.int32 and im.mode.startswith("I"):
                    arr = arr.astype(np.uint16) if arr.max(initial=0) < 65536 else arr.astype(np.float32)
        else:
            raise ImageReadError(f"{p}: unsupported file type {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    except ImageReadError:
        raise
    except Exception as exc:  # corrupt or truncated files surface as many exception types
        raise ImageReadError(f"{p}: unreadable image ({type(exc).__name__}: {exc})") from exc
    return to_model_dtype(_to_chw(arr, p), p)


def to_model_dtype(arr: np.ndarray, source: object) -> np.ndarray:
    """uint8, uint16 or float32, keeping what ``dtype_range`` needs to scale the image.

    Integers that fit uint16 become uint16 (lossless: int16, uint32 of a 12-bit camera). Others (negative
    pixels, values over 65535) cannot keep an integer range the normaliser knows: they become float32 in
    ``[0, 1]``, scaled by their source dtype's full range, with a warning. Before, they became unscaled
    float32 and reached the model at values up to thousands under ``dtype_range``.
    """
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "ui" and arr.dtype not in (np.uint8, np.uint16):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo >= 0 and hi < 65536:
            return arr.astype(np.uint16)
        info = np.iinfo(arr.dtype)
        log.warning("%s: %s pixels from %d to %d do not fit uint16; scaled by the %s range [%d, %d] to float32 "
                    "in [0, 1]", utf8(str(source)), arr.dtype, lo, hi, arr.dtype, info.min, info.max)
        return ((arr.astype(np.float64) - info.min) / (float(info.max) - info.min)).astype(np.float32)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        return arr.astype(np.float32)
    return arr


def scale_to_unit(plane: np.ndarray) -> np.ndarray:
    """One plane as float32 on the ``dtype_range`` scale (integers / their range, floats as they are)."""
    from chadavit.data.normalize import integer_range

    if plane.dtype.kind in "ui":
        return (plane.astype(np.float32) / integer_range(plane, plane.dtype)).astype(np.float32)
    return plane.astype(np.float32)


def ome_tiff_channel_names(path: Path, count: int) -> list[str] | None:
    """Channel names from the OME-XML of an OME-TIFF (``None`` when absent or inconsistent)."""
    import xml.etree.ElementTree as ET

    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            xml = tif.ome_metadata if tif.is_ome else None
    except Exception:  # noqa: BLE001 - unreadable files fail later, with the reader's message
        return None
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels") or e.tag == "Pixels"), None)
    if pixels is None:
        return None
    names = [c.get("Name") or c.get("ID") or "" for c in pixels if c.tag.endswith("Channel")]
    if len(names) != count or not all(names):
        return None
    return names


def read_image_with_names(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read a multi-channel file with its channel names: from the OME-XML of an OME-TIFF, else ``ch0, ch1, ...``.

    The one place channel names of multi-channel files come from, so ``embed`` and ``data import`` agree.
    """
    p = Path(path)
    arr = read_image_file(p)
    names = ome_tiff_channel_names(p, arr.shape[0]) if p.suffix.lower() in (".tif", ".tiff") else None
    return arr, names or [f"ch{i}" for i in range(arr.shape[0])]


@dataclass
class ImageFiles:
    """The channel files of one image, found by a filename pattern."""

    key: dict[str, str]
    channels: dict[str, Path] = field(default_factory=dict)

    @property
    def image_id(self) -> str:
        return "_".join(self.key.values()) if self.key else next(iter(self.channels.values())).stem

    def read(self, channel_order: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
        """Stack the channel files as ``(C, H, W)``; all must share height, width and dtype."""
        names = list(channel_order) if channel_order is not None else list(self.channels)
        missing = [n for n in names if n not in self.channels]
        if missing:
            raise ImageReadError(f"image {self.image_id}: missing channel file(s) for {missing}")
        planes = []
        for n in names:
            a = read_image_file(self.channels[n])
            if a.shape[0] != 1:
                raise ImageReadError(f"{self.channels[n]}: expected one channel per file, found {a.shape[0]}")
            planes.append(a[0])
        shapes = {p.shape for p in planes}
        if len(shapes) > 1:
            detail = ", ".join(f"{n}: {p.shape[0]}x{p.shape[1]}" for n, p in zip(names, planes))
            raise ImageReadError(f"image {self.image_id}: channel files differ in size ({detail})")
        dtypes = {p.dtype for p in planes}
        if len(dtypes) > 1:  # e.g. uint8 and uint16 channel files: each scaled by its own range before stacking
            log.warning("image %s: channel files of different types (%s); each plane is scaled by its own integer "
                        "range to float32 in [0, 1]", utf8(self.image_id), ", ".join(sorted(map(str, dtypes))))
            return np.stack([scale_to_unit(p) for p in planes]), names
        return np.stack(planes), names


_FIELD = re.compile(r"\{(\w+)(?::((?:[^{}]|\{\d*,?\d*\})+))?\}")
SHOW_NAMES = 5  # file names quoted in a message before "..."


class PatternError(ChadavitError, ValueError):
    """A ``--pattern`` that is invalid, or files it cannot account for unambiguously; the message names them."""


def pattern_to_regex(pattern: str, greedy: bool | set[str] = False) -> re.Pattern[str]:
    """``"{well}_{site}_{channel}.tif"`` -> a regex with one named group per field.

    Untyped fields match as little as possible (``greedy`` names the fields, or all with ``True``,
    that match as much as possible instead: used to detect ambiguous splits); a typed field such
    as ``{well:[A-P]\\d\\d}`` pins down names whose parts contain the separator
    (``{plate}_{well:[A-P]\\d\\d}f{site}d{channel}.tif`` on ``AS_0912_0501_D03f00d1.tif``).
    """
    out, pos = "", 0
    for m in _FIELD.finditer(pattern):
        name = m.group(1)
        untyped = ".+" if greedy is True or (greedy and name in greedy) else ".+?"
        out += re.escape(pattern[pos : m.start()]) + f"(?P<{name}>{m.group(2) or untyped})"
        pos = m.end()
    out += re.escape(pattern[pos:])
    try:
        return re.compile(f"^{out}$", re.IGNORECASE)
    except re.error as exc:
        raise PatternError(f"pattern {pattern!r} is not valid: {exc}") from None


def _names(paths: Sequence[Path | str], root: Path | None = None) -> str:
    shown = [str(Path(p).relative_to(root)) if root is not None else str(p) for p in list(paths)[:SHOW_NAMES]]
    return ", ".join(shown) + (f", ... ({len(paths)} in all)" if len(paths) > SHOW_NAMES else "")


@dataclass
class PatternGrouping:
    """Where every file of a folder went: into an image, or unused because its name does not match."""

    images: list[ImageFiles]
    unmatched: list[Path]
    n_files: int
    unreadable: list[Unreadable] = field(default_factory=list)  # folders/files that could not be listed

    @property
    def n_used(self) -> int:
        return sum(len(g.channels) for g in self.images)

    def summary(self, root: Path | str | None = None) -> str:
        """The one-line account: N files, M images, K unused (with the first unused names)."""
        line = f"{self.n_files} file(s), {len(self.images)} image(s), {len(self.unmatched)} file(s) unused"
        if self.unmatched:
            line += f" (not matching the pattern: {utf8(_names(self.unmatched, Path(root) if root else None))})"
        if self.unreadable:
            line += f"; {len(self.unreadable)} folder(s) or file(s) could not be read: {self.unreadable[0].message}"
        return line


def _split(fields: dict[str, str], rel_dir: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """(image key, channel) of one file's pattern fields; ``_``-fields do not identify the image."""
    key = {k: v for k, v in fields.items() if not k.startswith("_") and k != "channel"}
    return tuple((({"folder": rel_dir} if rel_dir != "." else {}) | key).items()), fields["channel"]


def _partition(splits: dict[Path, tuple[tuple[tuple[str, str], ...], str]]) -> set[frozenset[tuple[Path, str]]]:
    groups: dict[tuple[tuple[str, str], ...], set[tuple[Path, str]]] = {}
    for f, (key, channel) in splits.items():
        groups.setdefault(key, set()).add((f, channel))
    return {frozenset(g) for g in groups.values()}


def group_pattern_files(folder: str | Path, pattern: str, recursive: bool = True) -> PatternGrouping:
    """Group the files of ``folder`` into images by ``pattern``, accounting for every file.

    ``pattern`` must contain ``{channel}``; every other field identifies the image, except fields
    whose name starts with ``_`` (``{_uuid}``), which must match but do not (a per-file id that
    differs between the channels of one image). Image files whose names do not match are listed
    as unused. Raises :class:`PatternError`, naming the files, when names can be split in more than
    one way that changes which files form an image or what their channels are (type the fields,
    e.g. ``{well:[A-P]\\d\\d}``), or when two files claim the same image and channel. A split that
    only changes metadata values (e.g. plate vs well) is an error too: a wrong plate or well in the
    table is a silent wrong result.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: folder not found")
    if not re.search(r"\{channel(:|\})", pattern):
        raise PatternError(f"pattern {pattern!r} must contain a {{channel}} field")
    rx = pattern_to_regex(pattern)
    untyped = [m.group(1) for m in _FIELD.finditer(pattern) if not m.group(2)]
    variants = [pattern_to_regex(pattern, True)] + [pattern_to_regex(pattern, {f}) for f in untyped]
    splits: dict[Path, tuple[tuple[tuple[str, str], ...], str]] = {}
    other: list[dict[Path, tuple[tuple[tuple[str, str], ...], str]]] = [{} for _ in variants]  # where they differ
    example: dict[Path, tuple[dict[str, str], dict[str, str]]] = {}
    unmatched: list[Path] = []
    n_files = 0
    unreadable: list[Unreadable] = []
    for f in walk_files(root, recursive, unreadable):
        m = rx.match(f.name)
        if not m:
            if f.suffix.lower() in IMAGE_SUFFIXES:
                n_files += 1
                unmatched.append(f)
            continue
        n_files += 1
        rel_dir = str(f.parent.relative_to(root))
        splits[f] = _split(m.groupdict(), rel_dir)
        for v, vrx in enumerate(variants):
            vm = vrx.match(f.name)
            assert vm is not None  # the same language, only another split
            if vm.groupdict() != m.groupdict():
                other[v][f] = _split(vm.groupdict(), rel_dir)
                example.setdefault(f, (m.groupdict(), vm.groupdict()))
    if example:
        base = _partition(splits)
        files = sorted(example)
        f = files[0]
        one, two = example[f]
        what = (f"{root}: pattern {pattern!r} splits {len(files)} file name(s) in more than one way "
                f"({_names(files, root)}); e.g. {f.name}: {one} or {two}")
        if any(o and _partition(splits | o) != base for o in other):
            raise PatternError(f"{what}, which groups the files into other images or channels. Pin the fields "
                               "down with types, e.g. {well:[A-P]\\d\\d} or {channel:w\\d}")
        raise PatternError(f"{what}. The images are the same either way but their metadata is not: pin the fields "
                           "down with types, e.g. {well:[A-P]\\d\\d}, so that every name has one reading")
    images: dict[tuple[tuple[str, str], ...], ImageFiles] = {}
    duplicates: list[tuple[str, str, Path, Path]] = []
    for f, (key, channel) in splits.items():
        group = images.setdefault(key, ImageFiles(key=dict(key)))
        if channel in group.channels:
            duplicates.append((group.image_id, channel, group.channels[channel], f))
            continue
        group.channels[channel] = f
    if duplicates:
        shown = "; ".join(f"{a.relative_to(root)} and {b.relative_to(root)} are both image {i!r} channel {c!r}"
                          for i, c, a, b in duplicates[:SHOW_NAMES])
        raise PatternError(f"{root}: pattern {pattern!r} gives {len(duplicates)} file(s) a channel another file "
                           f"already has: {shown}. Add the field that tells them apart to the pattern")
    return PatternGrouping([images[k] for k in sorted(images)], unmatched, n_files, unreadable)


def group_channel_files(folder: str | Path, pattern: str, recursive: bool = True) -> list[ImageFiles]:
    """The images of :func:`group_pattern_files` (which also lists the files left unused), sorted by key."""
    return group_pattern_files(folder, pattern, recursive).images


def list_image_files(folder: str | Path, recursive: bool = True,
                     problems: list[Unreadable] | None = None) -> list[Path]:
    """Every image file under ``folder`` (multi-channel-file mode), sorted; see :func:`walk_files` for ``problems``."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: folder not found")
    return [p for p in walk_files(root, recursive, problems) if p.suffix.lower() in IMAGE_SUFFIXES]
