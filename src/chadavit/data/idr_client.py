"""A small, polite client for the Image Data Resource's public HTTP interfaces.

Only plain GET requests against endpoints that the public IDR serves are used (OMERO JSON API
``/api/v0/m/...``, ``/webclient/api/annotations/``, ``/webclient/imgData/``,
``/webgateway/render_image/``) plus, where a study publishes them, OME-Zarr images read over HTTP
(so raw intensities are kept). The transport (retries, session cookie, paging) is
:mod:`chadavit.data.idr_http`; the OME-Zarr reader is :mod:`chadavit.data.idr_zarr`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chadavit.data.idr_http import (  # noqa: F401 - the public names of the IDR client stay importable from here
    DEFAULT_SERVER,
    RETRY_STATUS,
    USER_AGENT,
    BadBody,
    IDRError,
    IDRNotFound,
    IDRTransport,
)
from chadavit.data.idr_zarr import ZarrV2Array, read_zarr_plane  # noqa: F401
from chadavit.retry import RetryPolicy  # noqa: F401 - imported from here by the CLI and tests


def decode_png_gray(data: bytes) -> np.ndarray:
    """Decode a rendered PNG/JPEG as one 8-bit grey plane; raises :class:`BadBody` when it is undecodable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds on corrupt data
        raise BadBody(f"undecodable image ({exc.__class__.__name__}: {exc})") from exc
    if arr.ndim == 3:
        # m=g with colour $FFFFFF gives R=G=B; max is also right for any single-colour LUT.
        arr = arr[..., :3].max(axis=-1)
    if arr.dtype != np.uint8:
        raise BadBody(f"rendered image has dtype {arr.dtype}, expected 8-bit")
    return np.ascontiguousarray(arr)


@dataclass
class ImageMeta:
    """What the builder needs about one image, from ``/webclient/imgData/ID/``."""

    image_id: int
    name: str
    size_x: int
    size_y: int
    size_z: int
    size_t: int
    size_c: int
    pixel_type: str
    channel_labels: list[str]
    windows: list[tuple[float, float]]  # per channel (min, max) of the stored data
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_imgdata(cls, d: dict[str, Any]) -> ImageMeta:
        size = d["size"]
        chans = d.get("channels") or []
        labels = [str(c.get("label") or f"ch{k}") for k, c in enumerate(chans)]
        windows = []
        for c in chans:
            w = c.get("window") or {}
            lo = w.get("min", w.get("start", 0.0))
            hi = w.get("max", w.get("end", 255.0))
            windows.append((float(lo), float(hi)))
        n = int(size["c"])
        if len(labels) != n:
            labels = (labels + [f"ch{k}" for k in range(len(labels), n)])[:n]
            windows = (windows + [(0.0, 255.0)] * n)[:n]
        return cls(image_id=int(d["id"]), name=str(d.get("meta", {}).get("imageName", "")),
                   size_x=int(size["width"]), size_y=int(size["height"]), size_z=int(size.get("z") or 1),
                   size_t=int(size.get("t") or 1), size_c=n,
                   pixel_type=str(d.get("meta", {}).get("pixelsType", "")), channel_labels=labels,
                   windows=windows, raw=d)


class IDRClient(IDRTransport):
    """HTTP client for one IDR-like server (``base_url``), safe to share between threads.

    ``zarr_base``: root of the OME-Zarr mirror (e.g. ``https://livingobjects.ebi.ac.uk/idr/zarr/v0.1``,
    images at ``{zarr_base}/{image_id}.zarr``); ``zarr_studies``: study names (``idr0002``...) whose
    images are looked up there first (``{"*"}`` = every study). Images without a Zarr copy fall back
    to per-channel 8-bit renders.
    """

    def __init__(self, base_url: str = DEFAULT_SERVER, *, policy: RetryPolicy | None = None,
                 user_agent: str = USER_AGENT, zarr_base: str | None = None,
                 zarr_studies: set[str] | None = None, sleep: Callable[[float], None] = time.sleep,
                 page_limit: int = 500) -> None:
        super().__init__(base_url, policy=policy, user_agent=user_agent, sleep=sleep, page_limit=page_limit)
        self.zarr_base = zarr_base.rstrip("/") if zarr_base else None
        self.zarr_studies = set(zarr_studies or ())

    # ------------------------------------------------------------------ containers
    def screens(self) -> list[dict[str, Any]]:
        return list(self.paged("/api/v0/m/screens/", {"childCount": "true"}))

    def projects(self) -> list[dict[str, Any]]:
        return list(self.paged("/api/v0/m/projects/", {"childCount": "true"}))

    def map_annotations(self, kind: str, obj_id: int) -> dict[str, str]:
        """Key/value annotations of a screen/project/plate/image (repeated keys joined with '; ')."""
        d = self.get_json("/webclient/api/annotations/", {"type": "map", kind: obj_id})
        out: dict[str, list[str]] = {}
        for ann in d.get("annotations", []):
            _add_values(out, ann)
        return {k: "; ".join(v) for k, v in out.items()}

    def map_annotations_many(self, kind: str, ids: list[int], batch: int = 10) -> dict[int, dict[str, str]]:
        """Key/value annotations of many screens or projects, ``batch`` ids per request (as IDR's gallery does),
        grouped by the annotated object (``link.parent.id``)."""
        out: dict[int, dict[str, list[str]]] = {int(i): {} for i in ids}
        for k in range(0, len(ids), batch):
            chunk = [int(i) for i in ids[k:k + batch]]
            d = self.get_json("/webclient/api/annotations/", {"type": "map", kind: chunk})
            for ann in d.get("annotations", []):
                parent = ((ann.get("link") or {}).get("parent") or {}).get("id")
                if parent is None or int(parent) not in out:
                    continue
                _add_values(out[int(parent)], ann)
        return {i: {k: "; ".join(v) for k, v in kv.items()} for i, kv in out.items()}

    def screen_plates(self, screen_id: int) -> list[dict[str, Any]]:
        return list(self.paged(f"/api/v0/m/screens/{screen_id}/plates/"))

    def plate_layout(self, plate_id: int) -> tuple[int, int]:
        """(number of wells, fields per well) of a plate: the slots its images can occupy."""
        d = self.get_json(f"/api/v0/m/plates/{plate_id}/")["data"]
        idx = d.get("omero:wellsampleIndex") or [0, 0]
        fields = int(idx[1]) - int(idx[0]) + 1 if idx else 1
        _, wells = self.page(f"/api/v0/m/plates/{plate_id}/wells/", 0, 1)
        return wells, max(fields, 1)

    def plate_wells(self, plate_id: int, offset: int, limit: int) -> list[dict[str, Any]]:
        return self.items(f"/api/v0/m/plates/{plate_id}/wells/", offset, limit)

    def project_datasets(self, project_id: int) -> list[dict[str, Any]]:
        return list(self.paged(f"/api/v0/m/projects/{project_id}/datasets/", {"childCount": "true"}))

    def dataset_image_count(self, dataset: dict[str, Any]) -> int:
        if "omero:childCount" in dataset:
            return int(dataset["omero:childCount"])
        return self.page(f"/api/v0/m/datasets/{dataset['@id']}/images/", 0, 1)[1]

    def dataset_images(self, dataset_id: int, offset: int, limit: int) -> list[dict[str, Any]]:
        return self.items(f"/api/v0/m/datasets/{dataset_id}/images/", offset, limit)

    # ------------------------------------------------------------------ images
    def img_data(self, image_id: int) -> ImageMeta:
        return ImageMeta.from_imgdata(self.get_json(f"/webclient/imgData/{int(image_id)}/"))

    def render_channel(self, image_id: int, z: int, t: int, channel: int, window: tuple[float, float]) -> np.ndarray:
        """One channel (0-based) rendered as 8-bit grey, its full data range ``window`` mapped to 0..255.

        Lossless PNG is requested (the default JPEG would add compression artefacts).
        """
        lo, hi = window
        c = f"{channel + 1}|{_num(lo)}:{_num(hi)}$FFFFFF"
        return self.get_bytes(f"/webgateway/render_image/{int(image_id)}/{int(z)}/{int(t)}/",
                              {"c": c, "m": "g", "format": "png"}, validate=decode_png_gray)

    def zarr_image_url(self, image_id: int, study: str) -> str | None:
        if not self.zarr_base:
            return None
        short = study.split("-")[0]
        if "*" in self.zarr_studies or short in self.zarr_studies or study in self.zarr_studies:
            return f"{self.zarr_base}/{int(image_id)}.zarr"
        return None

    def zarr_plane(self, url: str, z: int, t: int) -> np.ndarray | None:
        """``(C, Y, X)`` raw plane at ``z``, ``t`` of an OME-Zarr image; ``None`` when it is not there (404)."""
        return read_zarr_plane(self, url, z, t)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _add_values(out: dict[str, list[str]], ann: dict[str, Any]) -> None:
    """Add a map annotation's key/value pairs to ``out`` (each distinct value once per key, in order)."""
    for kv in ann.get("values") or []:
        if len(kv) >= 2:
            vals = out.setdefault(str(kv[0]), [])
            if str(kv[1]) not in vals:
                vals.append(str(kv[1]))
