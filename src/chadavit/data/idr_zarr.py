"""One ``(z, t)`` plane of an OME-Zarr image read over HTTP (NGFF 0.1-0.4, Zarr v2), with the IDR client's retries.

Raw intensities are kept (unlike the 8-bit renders of ``/webgateway/``); numcodecs decodes the chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chadavit.data.idr_http import BadBody, IDRNotFound, IDRTransport


def read_zarr_plane(client: IDRTransport, url: str, z: int, t: int) -> np.ndarray | None:
    """``(C, Y, X)`` raw plane at ``z``, ``t`` of the full-resolution level of the OME-Zarr image at ``url``;
    ``None`` when the image is not there (404)."""
    try:
        attrs = client.get_json(f"{url}/.zattrs")
    except IDRNotFound:
        return None
    ms = attrs["multiscales"][0]
    path = ms["datasets"][0]["path"]
    axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", ["t", "c", "z", "y", "x"])]
    return ZarrV2Array(client, f"{url}/{path}", axes).plane(z, t)


class ZarrV2Array:
    """Reads one (z, t) plane of a Zarr v2 array over HTTP with the client's retries (numcodecs decodes chunks)."""

    def __init__(self, client: IDRTransport, url: str, axes: list[str]) -> None:
        self.client = client
        self.url = url
        self.meta = client.get_json(f"{url}/.zarray")
        self.axes = axes
        self.shape = [int(s) for s in self.meta["shape"]]
        self.chunks = [int(s) for s in self.meta["chunks"]]
        if len(self.axes) != len(self.shape):
            self.axes = ["t", "c", "z", "y", "x"][-len(self.shape):]
        self.dtype = np.dtype(self.meta["dtype"])
        self.sep = self.meta.get("dimension_separator", ".")
        comp = self.meta.get("compressor")
        self.codec = None
        if comp is not None:
            import numcodecs

            self.codec = numcodecs.get_codec(comp)
        self.filters = []
        if self.meta.get("filters"):
            import numcodecs

            self.filters = [numcodecs.get_codec(f) for f in self.meta["filters"]]

    def _chunk(self, idx: tuple[int, ...]) -> np.ndarray:
        key = self.sep.join(str(i) for i in idx)
        shape = tuple(self.chunks)

        def decode(body: bytes) -> np.ndarray:
            try:
                buf: Any = body
                if self.codec is not None:
                    buf = self.codec.decode(buf)
                for f in reversed(self.filters):
                    buf = f.decode(buf)
                arr = np.frombuffer(bytes(buf), dtype=self.dtype)
                return arr.reshape(shape, order=self.meta.get("order", "C"))
            except Exception as exc:  # noqa: BLE001 - codec errors vary
                raise BadBody(f"undecodable zarr chunk {key} ({exc})") from exc

        try:
            return self.client.get_bytes(f"{self.url}/{key}", validate=decode)
        except IDRNotFound:
            return np.full(shape, self.meta.get("fill_value") or 0, dtype=self.dtype)

    def plane(self, z: int, t: int) -> np.ndarray:
        pos = {a: i for i, a in enumerate(self.axes)}
        ny, nx = self.shape[pos["y"]], self.shape[pos["x"]]
        nc = self.shape[pos["c"]] if "c" in pos else 1
        out = np.zeros((nc, ny, nx), dtype=self.dtype)
        fixed = {"z": z, "t": t}
        ranges = []
        for a, n, ch in zip(self.axes, self.shape, self.chunks, strict=True):
            if a in fixed:
                ranges.append([fixed[a] // ch])
            else:
                ranges.append(list(range((n + ch - 1) // ch)))
        for idx in np.ndindex(*[len(r) for r in ranges]):
            cidx = tuple(r[i] for r, i in zip(ranges, idx, strict=True))
            chunk = self._chunk(cidx)
            sel: list[Any] = []
            dst: dict[str, slice] = {}
            for a, ci, ch, n in zip(self.axes, cidx, self.chunks, self.shape, strict=True):
                if a in fixed:
                    sel.append(fixed[a] - ci * ch)
                else:
                    lo, hi = ci * ch, min(n, (ci + 1) * ch)
                    sel.append(slice(0, hi - lo))
                    dst[a] = slice(lo, hi)
            block = chunk[tuple(sel)]
            if "c" not in pos:
                block = block[None]
            out[dst.get("c", slice(0, 1)), dst["y"], dst["x"]] = block
        return out
