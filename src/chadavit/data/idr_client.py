"""A small, polite client for the Image Data Resource's public HTTP interfaces.

Only plain GET requests against endpoints that the public IDR serves are used (OMERO JSON API
``/api/v0/m/...``, ``/webclient/api/annotations/``, ``/webclient/imgData/``,
``/webgateway/render_image/``) plus, where a study publishes them, OME-Zarr images read over HTTP
(so raw intensities are kept). Every request is retried with exponential back-off on timeouts,
connection errors, 5xx, 429 (``Retry-After`` honoured) and truncated or undecodable bodies.
The stdlib ``urllib`` is used so that the builder needs no extra dependency.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import io
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chadavit.errors import ChadavitError
from chadavit.retry import RetryPolicy
from chadavit.version import __version__

log = logging.getLogger(__name__)

DEFAULT_SERVER = "https://idr.openmicroscopy.org"
USER_AGENT = f"chadavit/{__version__} (IDRCell100k builder; +https://github.com/nicoboou/chadavit)"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class IDRError(ChadavitError, RuntimeError):
    """A request failed for good (after retries, or with a status that retrying cannot fix)."""

    def __init__(self, message: str, url: str = "", status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts


class IDRNotFound(IDRError):
    """404: the object does not exist (never retried)."""


class BadBody(Exception):
    """The body arrived but cannot be used (truncated, undecodable); the request is retried."""




def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


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


class IDRClient:
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
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.user_agent = user_agent
        self.zarr_base = zarr_base.rstrip("/") if zarr_base else None
        self.zarr_studies = set(zarr_studies or ())
        self.sleep = sleep
        self.page_limit = page_limit
        self._cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self._cookies))
        self._session_lock = threading.Lock()
        self._session_ready = False
        self.requests_made = 0
        self.retries_made = 0

    # ------------------------------------------------------------------ transport
    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        u = path if path.startswith(("http://", "https://")) else self.base_url + path
        if params:
            q = urllib.parse.urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True, safe="|:$,")
            u += ("&" if "?" in u else "?") + q
        return u

    def _ensure_session(self) -> None:
        """IDR hands anonymous users a public-user cookie on ``/webclient/?experimenter=-1``."""
        with self._session_lock:
            if self._session_ready:
                return
            self._session_ready = True
            try:
                self.get_bytes("/webclient/", {"experimenter": -1}, session=False)
            except IDRError as exc:
                log.debug("public session request failed (continuing without cookie): %s", exc)

    def get_bytes(self, path: str, params: dict[str, Any] | None = None,
                  validate: Callable[[bytes], Any] | None = None, session: bool = True) -> Any:
        """GET with retries; returns the body, or ``validate(body)`` (which may raise :class:`BadBody`)."""
        url = self.url(path, params)
        attempts = self.policy.retries + 1
        last = ""
        status: int | None = None
        for attempt in range(attempts):
            retry_after: float | None = None
            if session and path.startswith("/webclient"):
                self._ensure_session()
            try:
                self.requests_made += 1
                req = urllib.request.Request(url, headers={"User-Agent": self.user_agent,
                                                           "Accept-Encoding": "identity"})
                with self._opener.open(req, timeout=self.policy.timeout) as resp:
                    if session and "/login" in urllib.parse.urlsplit(resp.geturl()).path:
                        # the public session expired: get a new cookie, then try again
                        with self._session_lock:
                            self._session_ready = False
                        raise BadBody("redirected to the login page (public session cookie missing or expired)")
                    body = resp.read()
                    expected = resp.headers.get("Content-Length")
                    if expected is not None and len(body) != int(expected):
                        raise BadBody(f"truncated body: {len(body)} of {expected} bytes")
                return validate(body) if validate is not None else body
            except urllib.error.HTTPError as exc:
                status = exc.code
                last = f"HTTP {exc.code}"
                try:
                    exc.read()
                except Exception:  # noqa: BLE001
                    pass
                if exc.code == 404:
                    raise IDRNotFound(f"{url}: 404 not found", url, 404, attempt + 1) from None
                if exc.code not in RETRY_STATUS:
                    raise IDRError(f"{url}: HTTP {exc.code} (not retried)", url, exc.code, attempt + 1) from None
                retry_after = _parse_retry_after(exc.headers.get("Retry-After")) if exc.headers else None
            except BadBody as exc:
                last = str(exc)
            except (TimeoutError, socket.timeout, urllib.error.URLError, http.client.HTTPException,
                    ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{exc.__class__.__name__}: {reason}"
            if attempt + 1 < attempts:
                delay = self.policy.delay(attempt, retry_after)
                self.retries_made += 1
                log.debug("retry %d/%d of %s in %.2fs (%s)", attempt + 1, self.policy.retries, url, delay, last)
                self.sleep(delay)
        raise IDRError(f"{url}: gave up after {attempts} attempts ({last})", url, status, attempts)

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        def parse(body: bytes) -> Any:
            try:
                return json.loads(body)
            except ValueError as exc:
                raise BadBody(f"invalid JSON ({exc})") from exc

        return self.get_bytes(path, params, validate=parse)

    def paged(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a JSON-API list, paging with ``limit``/``offset`` until ``totalCount``."""
        offset = 0
        limit = self.page_limit
        while True:
            page = self.get_json(path, {**(params or {}), "offset": offset, "limit": limit})
            data = page.get("data", [])
            meta = page.get("meta", {})
            yield from data
            limit = min(limit, int(meta.get("maxLimit") or limit))
            offset += len(data)
            total = meta.get("totalCount")
            if not data or (total is not None and offset >= int(total)):
                return

    def page(self, path: str, offset: int, limit: int, params: dict[str, Any] | None = None) -> tuple[list[dict], int]:
        """One page of a JSON-API list and the list's ``totalCount``."""
        page = self.get_json(path, {**(params or {}), "offset": offset, "limit": limit})
        return page.get("data", []), int(page.get("meta", {}).get("totalCount", 0))

    def items(self, path: str, offset: int, count: int, params: dict[str, Any] | None = None) -> list[dict]:
        """Items ``offset .. offset+count-1`` of a JSON-API list (several requests if the server's maxLimit is
        smaller than ``count``)."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            data, total = self.page(path, offset + len(out), count - len(out), params)
            out.extend(data)
            if not data or offset + len(out) >= total:
                break
        return out

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
            for kv in ann.get("values") or []:
                if len(kv) >= 2:
                    vals = out.setdefault(str(kv[0]), [])
                    if str(kv[1]) not in vals:
                        vals.append(str(kv[1]))
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
                vals = out[int(parent)]
                for kv in ann.get("values") or []:
                    if len(kv) >= 2:
                        lst = vals.setdefault(str(kv[0]), [])
                        if str(kv[1]) not in lst:
                            lst.append(str(kv[1]))
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
        """``(C, Y, X)`` raw plane at ``z``, ``t`` of the full-resolution level of an OME-Zarr image (NGFF 0.1-0.4,
        Zarr v2); ``None`` when the image is not there (404)."""
        try:
            attrs = self.get_json(f"{url}/.zattrs")
        except IDRNotFound:
            return None
        ms = attrs["multiscales"][0]
        path = ms["datasets"][0]["path"]
        axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", ["t", "c", "z", "y", "x"])]
        return ZarrV2Array(self, f"{url}/{path}", axes).plane(z, t)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class ZarrV2Array:
    """Reads one (z, t) plane of a Zarr v2 array over HTTP with the client's retries (numcodecs decodes chunks)."""

    def __init__(self, client: IDRClient, url: str, axes: list[str]) -> None:
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
