"""Microscope files as they come (Nikon ND2, Zeiss CZI, Leica LIF, OME-TIFF) through bioio: the ``formats`` extra.

``pip install 'chadavit[formats]'`` installs bioio and its reader plugins. Each scene (ND2
multipoint position, CZI scene, LIF series, OME-TIFF image) becomes one image, its index kept as
``Site`` and its name as ``Scene``; each timepoint of a time series becomes its own image; z-stacks
are max-projected; channel names come from the file's metadata. Without the extra, ND2/CZI/LIF
files raise :class:`FormatsExtraMissing`, which names the extra; OME-TIFFs still read through tifffile.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chadavit.data.listing import Unreadable, walk_files
from chadavit.data.readers import ImageReadError, to_model_dtype
from chadavit.errors import ChadavitError

# suffix -> the bioio plugin that reads it
PLUGINS = {".nd2": "bioio_nd2", ".czi": "bioio_czi", ".lif": "bioio_lif", ".ome.tif": "bioio_ome_tiff",
           ".ome.tiff": "bioio_ome_tiff"}
VENDOR_SUFFIXES = (".nd2", ".czi", ".lif")  # need the extra; OME-TIFF has a fallback
EXTRA_HINT = "pip install 'chadavit[formats]'"


class FormatsExtraMissing(ChadavitError, ImportError):
    """A microscope file needs bioio or one of its plugins; the message names the extra to install."""


def format_suffix(path: str | Path) -> str | None:
    """``.nd2``, ``.czi``, ``.lif``, ``.ome.tif`` or ``.ome.tiff`` when ``path`` is such a file, else ``None``."""
    name = Path(path).name.lower()
    return next((s for s in sorted(PLUGINS, key=len, reverse=True) if name.endswith(s)), None)


def plugin_available(suffix: str) -> bool:
    return importlib.util.find_spec("bioio") is not None and importlib.util.find_spec(PLUGINS[suffix]) is not None


def uses_bioio(path: str | Path) -> bool:
    """Whether ``path`` is read here: always for ND2/CZI/LIF, for OME-TIFF when its plugin is installed."""
    suffix = format_suffix(path)
    return suffix is not None and (suffix in VENDOR_SUFFIXES or plugin_available(suffix))


def list_microscope_files(folder: str | Path, recursive: bool = True,
                          problems: list[Unreadable] | None = None) -> list[Path]:
    """The ND2/CZI/LIF (and, with the extra, OME-TIFF) files under ``folder``, sorted (``problems``: walk_files)."""
    return [p for p in walk_files(Path(folder), recursive, problems) if uses_bioio(p)]


def _open(path: Path):  # noqa: ANN202 - bioio.BioImage, imported lazily
    suffix = format_suffix(path) or path.suffix.lower()
    plugin = PLUGINS.get(suffix)
    if importlib.util.find_spec("bioio") is None or plugin is None or importlib.util.find_spec(plugin) is None:
        what = plugin.replace("_", "-") if plugin else "a bioio reader plugin"
        raise FormatsExtraMissing(f"{path}: reading {suffix} files needs bioio and {what}: {EXTRA_HINT}")
    from bioio import BioImage

    reader = importlib.import_module(plugin).Reader
    try:
        return BioImage(path, reader=reader)
    except Exception as exc:  # noqa: BLE001 - each plugin raises its own types for damaged files
        raise ImageReadError(f"{path}: unreadable {suffix} file ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class Field:
    """One image of a microscope file: a scene at one timepoint."""

    path: Path
    scene_index: int
    scene: str
    timepoint: int
    n_scenes: int
    n_timepoints: int

    @property
    def suffix_id(self) -> str:
        """``""`` for a single-image file, else ``_s<scene>`` and/or ``_t<time>``."""
        return (f"_s{self.scene_index}" if self.n_scenes > 1 else "") + \
            (f"_t{self.timepoint}" if self.n_timepoints > 1 else "")

    def metadata(self) -> dict[str, str]:
        meta = {"Site": str(self.scene_index), "Scene": self.scene}
        if self.n_timepoints > 1:
            meta["Timepoint"] = str(self.timepoint)
        return meta

    def read(self) -> tuple[np.ndarray, list[str]]:
        """``(C, H, W)`` pixels (z max-projected) and the channel names of this field."""
        img = _open(self.path)
        try:
            img.set_scene(self.scene_index)
            dims = img.dims
            order = "CZYXS" if "S" in dims.order and dims.S > 1 else "CZYX"
            arr = np.asarray(img.get_image_data(order, T=self.timepoint))
            if order == "CZYXS":  # RGB samples become channels
                arr = np.moveaxis(arr, -1, 1).reshape(-1, *arr.shape[1:4])
            arr = arr.max(axis=1)
            names = [str(n) for n in (img.channel_names or [])]
        except ChadavitError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(f"{self.path} scene {self.scene_index}: unreadable ({type(exc).__name__}: {exc})"
                                 ) from exc
        if len(names) != arr.shape[0] or len(set(names)) != len(names) or not all(names):
            names = [f"ch{i}" for i in range(arr.shape[0])]
        return to_model_dtype(arr, f"{self.path} scene {self.scene_index}"), names


def list_fields(path: str | Path) -> Iterator[Field]:
    """Every scene x timepoint of a microscope file (opens the file's metadata, reads no pixels)."""
    p = Path(path)
    img = _open(p)
    try:
        scenes = list(img.scenes)
        for i, scene in enumerate(scenes):
            img.set_scene(i)
            n_t = int(img.dims.T) if "T" in img.dims.order else 1
            for t in range(n_t):
                yield Field(p, i, str(scene), t, len(scenes), n_t)
    except ChadavitError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(f"{p}: cannot list scenes ({type(exc).__name__}: {exc})") from exc


def import_microscope_file(writer, path: Path, image_id: str, channel_map: dict[str, str] | None = None,  # noqa: ANN001
                           **columns: str) -> tuple[int, list[str]]:
    """Add every field of ``path`` to a :class:`~chadavit.data.dataset.DatasetWriter`; returns (added, errors).

    Image ids are ``image_id`` plus ``_s<scene>``/``_t<time>`` when the file holds several; the scene
    index and name become the ``site`` and ``scene`` manifest columns.
    """
    channel_map = channel_map or {}
    added, errors = 0, []
    try:
        fields = list(list_fields(path))
    except ImageReadError as exc:  # a damaged file is skipped like any unreadable image; a missing extra is not
        return 0, [str(exc)]
    for fld in fields:
        fid = image_id + fld.suffix_id
        if fid in writer:
            continue
        try:
            arr, names = fld.read()
            extra = {"site": str(fld.scene_index), "scene": fld.scene}
            if fld.n_timepoints > 1:
                extra["timepoint"] = str(fld.timepoint)
            writer.add(arr, fid, [channel_map.get(n, n) for n in names], **columns, **extra)
            added += 1
        except (ImageReadError, ValueError, OSError) as exc:
            errors.append(str(exc))
    return added, errors
