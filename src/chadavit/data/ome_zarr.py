"""Reading OME-Zarr (NGFF) images and plates with ``zarr`` directly.

Supports NGFF 0.4 (Zarr v2, attributes at the top level) and 0.5 (Zarr v3, attributes under
``"ome"``): single multiscale images, HCS plates (``plate`` -> ``well`` -> field images), and folders
or bioformats2raw-style groups that hold several images. Only the full-resolution level is read by
default; z-stacks are max-projected, time series must be split first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chadavit.data.readers import ImageReadError, check_pixels, to_model_dtype

_MAX_DEPTH = 3


@dataclass
class OmeZarrImage:
    """One field of view inside an OME-Zarr store (``group_path`` relative to ``store``)."""

    store: str
    group_path: str = ""
    plate: str | None = None
    well: str | None = None
    site: str | None = None
    channel_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"{self.store}/{self.group_path}" if self.group_path else self.store

    @property
    def image_id(self) -> str:
        stem = Path(self.store).name
        for suffix in (".ome.zarr", ".zarr"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        return f"{stem}/{self.group_path}" if self.group_path else stem

    def read(self, level: int = 0) -> tuple[np.ndarray, list[str]]:
        return read_ome_zarr_image(self.store, self.group_path, level=level)


def _ome(attrs: Mapping[str, Any]) -> dict[str, Any]:
    a = dict(attrs)
    return dict(a["ome"]) if isinstance(a.get("ome"), Mapping) else a


def _open(path: str, group_path: str = ""):  # noqa: ANN202 - zarr.Group
    import zarr

    try:
        root = zarr.open_group(path, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types for non-stores
        raise ImageReadError(f"{path}: not a readable Zarr group ({type(exc).__name__}: {exc})") from exc
    if not group_path:
        return root
    try:
        return root[group_path]
    except KeyError as exc:
        raise ImageReadError(f"{path}: group {group_path!r} not found") from exc


def is_ome_zarr(path: str | os.PathLike[str]) -> bool:
    """True for a Zarr group folder (``zarr.json``, ``.zgroup`` or ``.zattrs``) or a ``*.zarr`` folder."""
    p = Path(path)
    try:
        if not p.is_dir():
            return False
        return p.name.lower().endswith(".zarr") or any((p / m).is_file() for m in ("zarr.json", ".zgroup", ".zattrs"))
    except OSError:  # an unreadable folder is not a store; the listing reports it
        return False


def _channel_labels(attrs: dict[str, Any]) -> list[str] | None:
    chans = (attrs.get("omero") or {}).get("channels")
    if not chans:
        return None
    return [str(c.get("label") or f"ch{i}") for i, c in enumerate(chans)]


def _well_name(path: str, row: str | None = None, col: str | None = None) -> str:
    parts = path.strip("/").split("/")
    r = row if row is not None else parts[0]
    c = col if col is not None else (parts[1] if len(parts) > 1 else "")
    return f"{r}{int(c):02d}" if c.isdigit() else f"{r}{c}"


def _collect(store: str, group, group_path: str, depth: int, out: list[OmeZarrImage]) -> None:  # noqa: ANN001
    attrs = _ome(group.attrs)
    if "plate" in attrs:
        plate = attrs["plate"]
        rows = [r.get("name") for r in plate.get("rows", [])]
        cols = [c.get("name") for c in plate.get("columns", [])]
        plate_name = str(plate.get("name") or Path(store).name.split(".")[0])
        for w in plate.get("wells", []):
            wpath = str(w["path"])
            ri, ci = w.get("rowIndex"), w.get("columnIndex")
            well = _well_name(wpath, rows[ri] if ri is not None and ri < len(rows) else None,
                              str(cols[ci]) if ci is not None and ci < len(cols) else None)
            full = f"{group_path}/{wpath}".strip("/")
            try:
                wgroup = group[wpath]
            except KeyError:
                continue  # wells listed but not acquired
            images = (_ome(wgroup.attrs).get("well") or {}).get("images", [])
            for im in images:
                ipath = f"{full}/{im['path']}"
                labels = _channel_labels(_ome(group[f"{wpath}/{im['path']}"].attrs))
                out.append(OmeZarrImage(store, ipath, plate=plate_name, well=well, site=str(im["path"]),
                                        channel_names=labels))
        return
    if "multiscales" in attrs:
        out.append(OmeZarrImage(store, group_path, channel_names=_channel_labels(attrs)))
        return
    if depth >= _MAX_DEPTH:
        return
    for name, child in sorted(group.groups(), key=lambda kv: kv[0]):
        _collect(store, child, f"{group_path}/{name}".strip("/"), depth + 1, out)


def find_ome_zarr_images(path: str | os.PathLike[str]) -> list[OmeZarrImage]:
    """Every field of view in an OME-Zarr image, plate, multi-image group, or a folder of ``*.zarr`` stores."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: not found")
    if not is_ome_zarr(p):
        stores = sorted(c for c in p.iterdir() if is_ome_zarr(c)) if p.is_dir() else []
        if not stores:
            raise ImageReadError(f"{p}: neither an OME-Zarr store nor a folder of *.zarr stores")
        out: list[OmeZarrImage] = []
        for s in stores:
            out.extend(find_ome_zarr_images(s))
        return out
    out = []
    _collect(str(p), _open(str(p)), "", 0, out)
    if not out:
        raise ImageReadError(f"{p}: no OME-Zarr image found (no 'multiscales' or 'plate' metadata)")
    return out


def read_ome_zarr_image(store: str | os.PathLike[str], group_path: str = "", level: int = 0
                        ) -> tuple[np.ndarray, list[str]]:
    """Read one multiscale image as ``(C, H, W)`` plus its channel labels (``ch0..`` when unnamed)."""
    src = f"{store}/{group_path}" if group_path else str(store)
    group = _open(str(store), group_path)
    attrs = _ome(group.attrs)
    ms = attrs.get("multiscales")
    if not ms:
        raise ImageReadError(f"{src}: no 'multiscales' metadata")
    datasets = ms[0].get("datasets", [])
    if level >= len(datasets):
        raise ImageReadError(f"{src}: resolution level {level} requested but only {len(datasets)} exist")
    axes_meta = ms[0].get("axes")
    try:
        zarr_arr = group[datasets[level]["path"]]
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(f"{src}: unreadable pixel array ({type(exc).__name__}: {exc})") from exc
    check_pixels(zarr_arr.shape, src)
    try:
        arr = np.asarray(zarr_arr[...])
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(f"{src}: unreadable pixel array ({type(exc).__name__}: {exc})") from exc
    if axes_meta:
        axes = "".join((a["name"] if isinstance(a, Mapping) else str(a))[0].lower() for a in axes_meta)
    else:  # NGFF <= 0.3: always 5-D TCZYX
        axes = "tczyx"[-arr.ndim:]
    if len(axes) != arr.ndim:
        raise ImageReadError(f"{src}: axes {axes!r} do not match array shape {arr.shape}")
    if "t" in axes:
        i = axes.index("t")
        if arr.shape[i] != 1:
            raise ImageReadError(f"{src}: time series with {arr.shape[i]} time points; "
                                 "split it into single time points first")
        arr, axes = np.take(arr, 0, axis=i), axes.replace("t", "")
    if "z" in axes:
        i = axes.index("z")
        arr, axes = arr.max(axis=i), axes.replace("z", "")
    if "c" not in axes:
        arr, axes = arr[None], "c" + axes
    if set(axes) != set("cyx"):
        raise ImageReadError(f"{src}: unsupported axes {axes!r}; expected channel, y and x")
    arr = np.transpose(arr, [axes.index(a) for a in "cyx"])
    labels = _channel_labels(attrs) or [f"ch{i}" for i in range(arr.shape[0])]
    if len(labels) != arr.shape[0]:
        labels = [f"ch{i}" for i in range(arr.shape[0])]
    return to_model_dtype(np.ascontiguousarray(arr), src), labels


def write_ome_zarr_image(path: str | os.PathLike[str], image: np.ndarray, channel_names: list[str] | None = None,
                         zarr_format: int = 3) -> None:
    """Write a ``(C, H, W)`` array as a single-level OME-Zarr image (NGFF 0.5 for Zarr v3, 0.4 for v2).

    Small helper for tests and examples; use ome-zarr-py for pyramids and plates at scale.
    """
    import zarr

    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    _write_image_group(root, arr, channel_names, zarr_format)


def _write_image_group(group, arr: np.ndarray, channel_names: list[str] | None,  # noqa: ANN001
                       zarr_format: int) -> None:
    c, h, w = arr.shape
    group.create_array("0", shape=arr.shape, dtype=arr.dtype, chunks=(1, h, w))[...] = arr
    ms = [{"version": "0.5" if zarr_format == 3 else "0.4",
           "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
           "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]
    meta: dict[str, Any] = {"multiscales": ms}
    if channel_names:
        meta["omero"] = {"channels": [{"label": n} for n in channel_names]}
    if zarr_format == 3:
        group.attrs["ome"] = {"version": "0.5", **meta}
    else:
        group.attrs.update(meta)


def write_ome_zarr_plate(path: str | os.PathLike[str], fields: Mapping[tuple[str, int, int], np.ndarray],
                         channel_names: list[str] | None = None, name: str = "plate", zarr_format: int = 3) -> None:
    """Write a small HCS plate: ``fields[(row, column, field)] = (C, H, W)`` (e.g. ``("A", 1, 0)``)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    rows = sorted({k[0] for k in fields})
    cols = sorted({k[1] for k in fields})
    wells: dict[tuple[str, int], list[int]] = {}
    for r, c, f in fields:
        wells.setdefault((r, c), []).append(f)
    for (r, c, f), img in fields.items():
        g = root.require_group(f"{r}/{c}/{f}")
        _write_image_group(g, np.asarray(img) if np.asarray(img).ndim == 3 else np.asarray(img)[None], channel_names,
                           zarr_format)
    for (r, c), fs in wells.items():
        well = {"images": [{"path": str(f)} for f in sorted(fs)]}
        g = root[f"{r}/{c}"]
        if zarr_format == 3:
            g.attrs["ome"] = {"version": "0.5", "well": well}
        else:
            g.attrs["well"] = well
    plate = {"name": name, "rows": [{"name": r} for r in rows], "columns": [{"name": str(c)} for c in cols],
             "wells": [{"path": f"{r}/{c}", "rowIndex": rows.index(r), "columnIndex": cols.index(c)} for r, c in wells]}
    if zarr_format == 3:
        root.attrs["ome"] = {"version": "0.5", "plate": plate}
    else:
        root.attrs["plate"] = plate
