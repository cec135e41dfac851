"""Reading microscopy image files as ``(C, H, W)`` arrays and grouping per-channel files into images.

TIFF and OME-TIFF are read with ``tifffile``; PNG and JPEG with Pillow (16-bit PNGs stay uint16).
A filename pattern such as ``{well}_{site}_{channel}.tif`` groups one-file-per-channel folders:
every field except ``channel`` identifies the image, ``channel`` names the plane.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


class ImageReadError(ValueError):
    """An image file cannot be read or has an unusable layout; the message names the file."""


def _to_chw(arr: np.ndarray, path: Path) -> np.ndarray:
    arr = np.squeeze(arr)
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
    arr = _to_chw(arr, p)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "i":
        arr = arr.astype(np.uint16) if arr.min(initial=0) >= 0 and arr.max(initial=0) < 65536 else arr.astype(np.float32)
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 2:
        arr = arr.astype(np.float32)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


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
        stack = np.stack([p.astype(np.float32) for p in planes]) if len(dtypes) > 1 else np.stack(planes)
        return stack, names


_FIELD = re.compile(r"\{(\w+)(?::((?:[^{}]|\{\d*,?\d*\})+))?\}")


def pattern_to_regex(pattern: str) -> re.Pattern[str]:
    """``"{well}_{site}_{channel}.tif"`` -> a regex with one named group per field.

    Untyped fields match as little as possible; a typed field such as ``{well:[A-P]\\d\\d}`` pins
    down names whose parts contain the separator (``{plate}_{well:[A-P]\\d\\d}f{site}d{channel}.tif``
    on ``AS_0912_0501_D03f00d1.tif``).
    """
    out, pos = "", 0
    for m in _FIELD.finditer(pattern):
        out += re.escape(pattern[pos : m.start()]) + f"(?P<{m.group(1)}>{m.group(2) or '.+?'})"
        pos = m.end()
    out += re.escape(pattern[pos:])
    return re.compile(f"^{out}$", re.IGNORECASE)


def group_channel_files(folder: str | Path, pattern: str, recursive: bool = True) -> list[ImageFiles]:
    """Group the files of ``folder`` whose names match ``pattern`` into images, sorted by key.

    ``pattern`` must contain ``{channel}``; files that do not match are ignored. Fields whose name
    starts with ``_`` (``{_uuid}``) must match but do not identify the image (e.g. a per-file id
    that differs between the channels of one image).
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: folder not found")
    if not re.search(r"\{channel(:|\})", pattern):
        raise ValueError(f"pattern {pattern!r} must contain a {{channel}} field")
    rx = pattern_to_regex(pattern)
    images: dict[tuple[tuple[str, str], ...], ImageFiles] = {}
    for f in sorted(root.rglob("*") if recursive else root.iterdir()):
        m = rx.match(f.name) if f.is_file() else None
        if not m:
            continue
        fields = {k: v for k, v in m.groupdict().items() if not k.startswith("_")}
        channel = fields.pop("channel")
        rel_dir = str(f.parent.relative_to(root))
        key = ({"folder": rel_dir} if rel_dir != "." else {}) | fields
        images.setdefault(tuple(key.items()), ImageFiles(key=dict(key))).channels[channel] = f
    return [images[k] for k in sorted(images)]


def list_image_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Every readable image file under ``folder`` (multi-channel-file mode), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: folder not found")
    it = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
