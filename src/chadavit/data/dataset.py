"""The chadavit dataset format: a Parquet manifest plus a Zarr v3 store of channel planes.

Layout of a dataset directory::

    DIR/
      dataset.json                 format name and version
      manifest/part-00000.parquet  one row per image (several parts; read as one table)
      planes.zarr/                 Zarr v3 group; one array per (dtype, height, width), e.g. "uint16_224x224",
                                   shape (planes, H, W), chunk = 1 plane, shard = 64 planes, zstd + bitshuffle

Every image's channels are consecutive planes ``plane_offset .. plane_offset + n_channels - 1`` of
the array named in its ``array`` column, in their stored dtype (raw uint8/uint16 intensities are
kept; normalisation happens at batch time). Planes are written before the manifest part that
references them, and each manifest part appears by an atomic rename, so a crash never exposes a
half-written image: unreferenced planes are simply overwritten by the next writer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chadavit.atomic import write_atomic, write_text_atomic
from chadavit.data.listing import utf8
from chadavit.errors import ChadavitError
from chadavit.locks import lock_folder, remove_stale_temps

FORMAT_NAME = "chadavit-dataset"
FORMAT_VERSION = 1
SHARD_PLANES = 64
REQUIRED_COLUMNS = (
    "image_id",
    "source",
    "imaging_method",
    "channel_names",
    "n_channels",
    "height",
    "width",
    "dtype",
    "array",
    "plane_offset",
    "checksum",
)
STORE_DTYPES = ("uint8", "uint16", "float32")


class DatasetError(ChadavitError, ValueError):
    """A dataset directory is missing, incomplete or inconsistent; the message names the path."""


def image_checksum(image: np.ndarray) -> str:
    """SHA-256 of the raw bytes, shape and dtype of an image (what the store must give back)."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def check_image(arr: np.ndarray, row: pd.Series, path: Path) -> np.ndarray:
    """``arr`` if it matches the manifest row's checksum, else :class:`DatasetError` naming the image."""
    if row["checksum"] and image_checksum(arr) != row["checksum"]:
        raise DatasetError(f"{path}: image {row['image_id']!r} differs from its checksum (a missing or damaged "
                           "chunk of planes.zarr); `chadavit data info --verify` lists every such image")
    return arr


def array_name(dtype: np.dtype | str, height: int, width: int) -> str:
    return f"{np.dtype(dtype).name}_{height}x{width}"


def _read_manifest(root: Path) -> pd.DataFrame:
    parts = sorted((root / "manifest").glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REQUIRED_COLUMNS})
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    df["channel_names"] = df["channel_names"].map(lambda v: [str(x) for x in v])
    return df


def _open_group(root: Path, mode: str):  # noqa: ANN202 - zarr.Group
    import zarr

    return zarr.open_group(str(root / "planes.zarr"), mode=mode, zarr_format=3)


class ChannelDataset:
    """Read access to a dataset directory: ``len(ds)``, ``ds.manifest`` and ``ds.read(i)``.

    The Zarr store is opened lazily in each process, so the object can be handed to DataLoader
    workers.
    """

    def __init__(self, path: str | os.PathLike[str], manifest: pd.DataFrame | None = None) -> None:
        self.path = Path(path)
        meta = self.path / "dataset.json"
        if not meta.is_file():
            raise DatasetError(f"{self.path}: not a chadavit dataset (no dataset.json); build one with "
                               "`chadavit data import` or `chadavit idr build`")
        info = json.loads(meta.read_text())
        if info.get("format") != FORMAT_NAME:
            raise DatasetError(f"{meta}: format is {info.get('format')!r}, expected {FORMAT_NAME!r}")
        self.info: dict[str, Any] = info
        self.manifest: pd.DataFrame = _read_manifest(self.path) if manifest is None else manifest
        missing = [c for c in REQUIRED_COLUMNS if c not in self.manifest.columns]
        if missing:
            raise DatasetError(f"{self.path}: manifest lacks column(s) {missing}")
        self._group = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.manifest)

    def __repr__(self) -> str:
        return f"ChannelDataset({str(self.path)!r}, images={len(self)})"

    def _arrays(self):  # noqa: ANN202
        if self._group is None or self._pid != os.getpid():
            self._group = _open_group(self.path, "r")
            self._pid = os.getpid()
        return self._group

    def read(self, i: int, verify: bool = True) -> np.ndarray:
        """Image ``i`` as a ``(C, H, W)`` array in its stored dtype, checked against its manifest checksum.

        Zarr gives zeros for a missing chunk, so a damaged store would otherwise be read as blank images:
        a mismatch raises :class:`DatasetError` naming the image (``verify=False`` skips the check).
        """
        row = self.manifest.iloc[int(i)]
        start = int(row["plane_offset"])
        arr = np.asarray(self._arrays()[row["array"]][start : start + int(row["n_channels"])])
        return check_image(arr, row, self.path) if verify else arr

    def channel_names(self, i: int) -> list[str]:
        return list(self.manifest.iloc[int(i)]["channel_names"])

    def subset(self, mask: Sequence[bool] | np.ndarray | pd.Series) -> ChannelDataset:
        """A view on the rows where ``mask`` is true (e.g. ``ds.manifest.n_channels == 3``)."""
        return ChannelDataset(self.path, self.manifest[np.asarray(mask, dtype=bool)].reset_index(drop=True))

    def verify(self) -> list[str]:
        """Image ids whose stored planes do not match their recorded checksum."""
        rows = enumerate(self.manifest.itertuples())
        return [str(r.image_id) for i, r in rows if image_checksum(self.read(i, verify=False)) != r.checksum]


def open_dataset(path: str | os.PathLike[str]) -> ChannelDataset:
    """Open a chadavit dataset directory (Parquet manifest + Zarr v3 planes)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: dataset directory does not exist")
    return ChannelDataset(p)


class DatasetWriter:
    """Appends images to a dataset directory; safe to resume after a crash.

    Use as a context manager; call :meth:`add` per image and :meth:`flush` to make everything
    added so far visible (it is also called every ``flush_every`` images and on exit). Only one
    writer may hold a directory at a time: a second one, in this or another process, is refused with
    :class:`chadavit.locks.LockedError` (concurrent builders write separate directories and merge them
    with :func:`merge_datasets`). The lock is held until :meth:`close` (or the end of the ``with``).
    """

    def __init__(self, path: str | os.PathLike[str], flush_every: int = 256,
                 attrs: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        # before the manifest is read: two writers would both append part-00000 and planes from offset 0
        self._lock = lock_folder(self.path, " (another chadavit writer: data import, idr build, ...)")
        try:
            self._open(attrs)
        except BaseException:
            self._lock.release()
            raise
        self.flush_every = flush_every
        self._rows: list[dict[str, Any]] = []
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_start: dict[str, int] = {}

    def _open(self, attrs: dict[str, Any] | None) -> None:
        (self.path / "manifest").mkdir(exist_ok=True)
        remove_stale_temps(self.path / "manifest")  # parts a killed writer never published
        remove_stale_temps(self.path, ["dataset.json"])
        meta = self.path / "dataset.json"
        if meta.exists():
            info = json.loads(meta.read_text())
            if info.get("format") != FORMAT_NAME:
                raise DatasetError(f"{meta}: not a chadavit dataset, refusing to write into it")
        else:
            info = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "attrs": attrs or {}}
            write_text_atomic(meta, json.dumps(info, indent=2))
        self._group = _open_group(self.path, "a")
        existing = _read_manifest(self.path)
        self._ids: set[str] = set(existing["image_id"].astype(str))
        self._next_plane: dict[str, int] = {}
        for name, grp in existing.groupby("array"):
            self._next_plane[str(name)] = int((grp["plane_offset"] + grp["n_channels"]).max())
        self._part = len(list((self.path / "manifest").glob("part-*.parquet")))

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Publish what is queued, then let another writer in."""
        try:
            self.flush()
        finally:
            self._lock.release()

    def __contains__(self, image_id: str) -> bool:
        return utf8(str(image_id)) in self._ids

    @property
    def image_ids(self) -> set[str]:
        return set(self._ids)

    def add(self, image: np.ndarray, image_id: str, channel_names: Sequence[str] | None = None,
            source: str = "", imaging_method: str = "", **extra: Any) -> None:
        """Queue one ``(C, H, W)`` image with its metadata; extra keyword arguments become columns."""
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[0] < 1:
            raise DatasetError(f"image {image_id!r}: expected (C, H, W) with C >= 1, got shape {arr.shape}")
        if arr.dtype.name not in STORE_DTYPES:
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
            else:
                raise DatasetError(f"image {image_id!r}: dtype {arr.dtype} not storable; use one of {STORE_DTYPES}")
        image_id = utf8(str(image_id))  # a non-UTF-8 file name would stop the Parquet write
        if image_id in self._ids:
            raise DatasetError(f"{self.path}: image id {image_id!r} is already in the dataset")
        names = ([str(n) for n in channel_names] if channel_names is not None
                 else [f"ch{k}" for k in range(arr.shape[0])])
        if len(names) != arr.shape[0]:
            raise DatasetError(f"image {image_id!r}: {arr.shape[0]} channels but {len(names)} channel names")
        c, h, w = arr.shape
        name = array_name(arr.dtype, h, w)
        offset = self._next_plane.get(name, 0)
        if name not in self._pending:
            self._pending[name] = []
            self._pending_start[name] = offset
        self._pending[name].extend(arr)
        self._next_plane[name] = offset + c
        row = {"image_id": image_id, "source": str(source), "imaging_method": str(imaging_method),
               "channel_names": names, "n_channels": c, "height": h, "width": w, "dtype": arr.dtype.name,
               "array": name, "plane_offset": offset, "checksum": image_checksum(arr)}
        row.update(extra)
        self._rows.append(row)
        self._ids.add(image_id)
        if len(self._rows) >= self.flush_every:
            self.flush()

    def _write_planes(self) -> None:
        from zarr.codecs import BloscCodec

        for name, planes in self._pending.items():
            if not planes:
                continue
            start = self._pending_start[name]
            stack = np.stack(planes)
            _, h, w = stack.shape
            if name not in self._group:
                self._group.create_array(
                    name, shape=(0, h, w), dtype=stack.dtype, chunks=(1, h, w), shards=(SHARD_PLANES, h, w),
                    compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"), fill_value=0,
                )
            arr = self._group[name]
            end = start + stack.shape[0]
            if arr.shape[0] < end:
                arr.resize((end, h, w))
            arr[start:end] = stack
        self._pending = {}
        self._pending_start = {}

    def flush(self) -> None:
        """Write queued planes, then publish their manifest rows atomically."""
        if not self._rows:
            return
        self._write_planes()
        df = pd.DataFrame(self._rows)
        write_atomic(self.path / "manifest" / f"part-{self._part:05d}.parquet",
                     lambda t: df.to_parquet(t, index=False), sync=True)
        self._part += 1
        self._rows = []


def iter_images(ds: ChannelDataset) -> Iterator[tuple[pd.Series, np.ndarray]]:
    for i in range(len(ds)):
        yield ds.manifest.iloc[i], ds.read(i)


def merge_datasets(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> ChannelDataset:
    """Join several datasets (e.g. the shards of an array job) into ``out``; image ids must be unique."""
    with DatasetWriter(out) as writer:
        for path in inputs:
            ds = open_dataset(path)
            for row, image in iter_images(ds):
                if row["image_id"] in writer:
                    continue
                extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
                writer.add(image, row["image_id"], row["channel_names"], row["source"], row["imaging_method"], **extra)
    return open_dataset(out)
