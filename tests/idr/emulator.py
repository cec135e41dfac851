"""A local IDR-like HTTP server for tests (127.0.0.1, port 0, one thread per request).

Serves the endpoints the builder uses, shaped like the real responses in
``../shared/data/idr_api_fixtures`` (JSON-API lists with ``meta.totalCount/limit/offset/maxLimit``,
map annotations, plate/well/dataset listings, ``imgData``, per-channel PNG renders, OME-Zarr v2
images), and injects faults on demand: 5xx, 429 with Retry-After, slow responses (client timeouts),
truncated bodies, corrupt images and connection resets.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

OME = "http://www.openmicroscopy.org/Schemas/OME/2016-06#"
FAULT_KINDS = ("500", "503", "504", "429", "timeout", "truncated", "corrupt", "reset")


@dataclass
class EmuImage:
    id: int
    name: str
    data: np.ndarray  # (C, Z, H, W), uint8 or uint16
    labels: list[str]
    zarr: bool = False

    @property
    def c(self) -> int:
        return self.data.shape[0]

    def window(self, c: int) -> tuple[float, float]:
        ch = self.data[c]
        return float(ch.min()), float(ch.max())


def render(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The emulator's linear rendering of one channel plane into 8 bits (window lo:hi)."""
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((data.astype(np.float64) - lo) * scale), 0, 255).astype(np.uint8)


@dataclass
class World:
    screens: dict[int, dict[str, Any]] = field(default_factory=dict)
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    plates: dict[int, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[int, dict[str, Any]] = field(default_factory=dict)
    images: dict[int, EmuImage] = field(default_factory=dict)


class IDREmulator:
    """Use as ``with IDREmulator() as emu: client = IDRClient(emu.url)``; build the world with ``add_*``."""

    def __init__(self, max_limit: int = 500, slow_seconds: float = 1.0, fault_rate: float = 0.0, seed: int = 0,
                 fault_prefixes: tuple[str, ...] = ("/webgateway/render_image/", "/webclient/imgData/", "/zarr/"),
                 chunk: int = 16) -> None:
        self.world = World()
        self.max_limit = max_limit
        self.slow_seconds = slow_seconds
        self.fault_rate = fault_rate
        self.fault_prefixes = fault_prefixes
        self.chunk = chunk
        self._rng = np.random.default_rng(seed)
        self._faults: list[tuple[str, list[str]]] = []
        self.broken: set[int] = set()  # images whose renders are always corrupt
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []  # (path, outcome)
        self.user_agents: set[str] = set()
        self.delay = 0.0  # seconds added to every render (to slow a build down)
        self.require_cookie = True  # webclient URLs need the public session cookie, as on IDR
        self.retry_after = "0"  # seconds sent with injected 429s
        self.errors: list[str] = []  # exceptions raised while answering (must stay empty)
        self._next_id = 1000
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ world building
    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_image(self, data: np.ndarray, labels: list[str] | None = None, zarr: bool = False,
                  name: str | None = None) -> EmuImage:
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None, None]
        elif data.ndim == 3:
            data = data[:, None]
        iid = self.new_id()
        img = EmuImage(iid, name or f"image_{iid}", data, labels or [f"Ch{k}" for k in range(data.shape[0])], zarr)
        self.world.images[iid] = img
        return img

    @staticmethod
    def _ann(sample_type: str, imaging_method: str, study_type: str) -> list[list[str]]:
        return [["Sample Type", sample_type], ["Organism", "Homo sapiens"], ["Study Type", study_type],
                ["Imaging Method", imaging_method], ["License", "CC BY 4.0"]]

    def add_screen(self, name: str, plates: list[list[list[EmuImage | None]]], sample_type: str = "cell",
                   imaging_method: str = "fluorescence microscopy", study_type: str = "high content screen") -> int:
        """``plates[p][w][f]``: image of field f in well w of plate p (None or a short list = empty)."""
        sid = self.new_id()
        pids = []
        for p, wells in enumerate(plates):
            pid = self.new_id()
            fields = max((len(w) for w in wells), default=1)
            self.world.plates[pid] = {"name": f"plate{p}", "wells": [[i.id if i else None for i in w] for w in wells],
                                      "fields": fields, "well_ids": [self.new_id() for _ in wells]}
            pids.append(pid)
        self.world.screens[sid] = {"name": name, "plates": pids,
                                   "ann": self._ann(sample_type, imaging_method, study_type)}
        return sid

    def add_project(self, name: str, datasets: list[list[EmuImage]], sample_type: str = "cell",
                    imaging_method: str = "confocal microscopy", study_type: str = "cell") -> int:
        prid = self.new_id()
        dids = []
        for k, imgs in enumerate(datasets):
            did = self.new_id()
            self.world.datasets[did] = {"name": f"dataset{k}", "images": [i.id for i in imgs]}
            dids.append(did)
        self.world.projects[prid] = {"name": name, "datasets": dids,
                                     "ann": self._ann(sample_type, imaging_method, study_type)}
        return prid

    # ------------------------------------------------------------------ faults
    def inject(self, prefix: str, kinds: list[str]) -> None:
        """The next requests whose path starts with ``prefix`` get these faults, in order."""
        with self.lock:
            self._faults.append((prefix, list(kinds)))

    def _fault_for(self, path: str) -> str | None:
        with self.lock:
            for prefix, kinds in self._faults:
                if path.startswith(prefix) and kinds:
                    return kinds.pop(0)
            if self.fault_rate and path.startswith(self.fault_prefixes) and self._rng.random() < self.fault_rate:
                return str(self._rng.choice(FAULT_KINDS))
        return None

    # ------------------------------------------------------------------ expected outputs
    def served(self, image_id: int) -> np.ndarray:
        """``(C, H, W)`` the builder should receive for an image: the raw middle-Z plane when published as
        OME-Zarr, else the 8-bit full-range render of each channel."""
        img = self.world.images[int(image_id)]
        z = img.data.shape[1] // 2
        if img.zarr:
            return img.data[:, z].copy()
        return np.stack([render(img.data[c, z], *img.window(c)) for c in range(img.c)])

    def image_study(self) -> dict[int, str]:
        """image id -> container name, for every image reachable from a screen or project."""
        out: dict[int, str] = {}
        for s in self.world.screens.values():
            for pid in s["plates"]:
                for w in self.world.plates[pid]["wells"]:
                    for i in w:
                        if i is not None:
                            out[i] = s["name"]
        for p in self.world.projects.values():
            for did in p["datasets"]:
                for i in self.world.datasets[did]["images"]:
                    out[i] = p["name"]
        return out

    # ------------------------------------------------------------------ server
    def __enter__(self) -> IDREmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body are separate writes: without this, Nagle + delayed ACK add ~40 ms a request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:  # noqa: N802
                emu._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                emu._send_json(self, {"message": "Method not allowed"}, 405)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # client gave up: normal
                    emu.errors.append(f"server error: {sys.exc_info()[1]!r}")

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ responses
    def _send(self, h: BaseHTTPRequestHandler, body: bytes, status: int = 200, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _send_json(self, h: BaseHTTPRequestHandler, obj: Any, status: int = 200,
                   headers: dict[str, str] | None = None) -> None:
        self._send(h, json.dumps(obj).encode(), status, headers=headers)

    def _image_obj(self, iid: int, pixels: bool) -> dict[str, Any]:
        img = self.world.images[iid]
        d: dict[str, Any] = {"@id": iid, "@type": "http://www.openmicroscopy.org/Schemas/OME/2016-06#Image",
                             "Name": img.name}
        if pixels:
            c, z, hgt, wid = img.data.shape
            d["Pixels"] = {"SizeX": wid, "SizeY": hgt, "SizeZ": z, "SizeC": c, "SizeT": 1,
                           "Type": {"value": img.data.dtype.name}}
        return d

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        path = parsed.path
        q = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        with self.lock:
            self.user_agents.add(h.headers.get("User-Agent", ""))
        if (self.require_cookie and path.startswith("/webclient/") and path not in ("/webclient/", "/webclient/login/")
                and "sessionid=public" not in (h.headers.get("Cookie") or "")):
            # IDR redirects webclient URLs of users without the public-user session to the login page
            with self.lock:
                self.log.append((path, "login-redirect"))
            self._send(h, b"", 302, "text/html", headers={"Location": "/webclient/login/?url=" + path})
            return
        fault = self._fault_for(path)
        with self.lock:
            self.log.append((path, fault or "ok"))
        if fault in ("500", "503", "504"):
            self._send_json(h, {"message": f"injected {fault}"}, int(fault))
            return
        if fault == "429":
            self._send_json(h, {"message": "slow down"}, 429, headers={"Retry-After": self.retry_after})
            return
        if fault == "reset":
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault == "timeout":
            time.sleep(self.slow_seconds)
        if self.delay and path.startswith("/webgateway/"):
            time.sleep(self.delay)
        try:
            status, body, ctype = self._route(path, q, urllib.parse.parse_qs(parsed.query))
        except KeyError:
            status, body, ctype = 404, json.dumps({"message": f"{path} not found"}).encode(), "application/json"
        except Exception as exc:  # noqa: BLE001 - an emulator bug must show up in the tests, not as a hang
            with self.lock:
                self.errors.append(f"{path}: {exc!r}")
            status, body, ctype = 500, json.dumps({"message": repr(exc)}).encode(), "application/json"
        if status == 200 and fault == "truncated":
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.close_connection = True
            return
        if status == 200 and fault == "corrupt":
            if ctype == "image/png":
                body = b"\x89PNG\r\n\x1a\n" + bytes(len(body) - 8)
            elif ctype == "application/json":
                body = body[:-1] + b"@"
            else:
                body = bytes(len(body))
        self._send(h, body, status, ctype, headers={"Set-Cookie": "sessionid=public; Path=/"}
                   if path == "/webclient/" else None)

    def _route(self, path: str, q: dict[str, str], multi: dict[str, list[str]]) -> tuple[int, bytes, str]:
        w = self.world
        js = "application/json"

        def ok(obj: Any) -> tuple[int, bytes, str]:
            return 200, json.dumps(obj).encode(), js

        def page(items: list[dict[str, Any]]) -> tuple[int, bytes, str]:
            try:
                limit = min(int(q.get("limit", 200)), self.max_limit)
                offset = int(q.get("offset", 0))
            except ValueError as exc:
                return 400, json.dumps({"message": str(exc)}).encode(), js
            return ok({"meta": {"totalCount": len(items), "limit": limit, "offset": offset,
                                "maxLimit": self.max_limit}, "data": items[offset:offset + limit]})

        if path == "/webclient/":
            return 200, b"<html>OMERO.web</html>", "text/html"
        if path == "/webclient/login/":
            return 200, b"<html>login</html>", "text/html"
        if path in ("/api/v0/m/screens/", "/api/v0/m/projects/"):
            kind = "Screen" if "screens" in path else "Project"
            objs = w.screens if kind == "Screen" else w.projects
            child = "plates" if kind == "Screen" else "datasets"
            return page([{"@id": k, "@type": f"http://www.openmicroscopy.org/Schemas/OME/2016-06#{kind}",
                          "Name": v["name"], "Description": "", "omero:childCount": len(v[child])}
                         for k, v in sorted(objs.items())])
        if path == "/webclient/api/annotations/":
            if q.get("type") != "map":
                return ok({"annotations": [], "experimenters": []})
            anns = []
            for kind, objs, cls in (("screen", w.screens, "ScreenI"), ("project", w.projects, "ProjectI")):
                for oid in (int(x) for x in multi.get(kind, [])):  # repeatable, like the gallery's batches
                    o = objs.get(oid)
                    if o is not None:
                        anns.append({"id": oid * 7, "ns": "openmicroscopy.org/omero/client/mapAnnotation",
                                     "values": o["ann"], "class": "MapAnnotationI",
                                     "link": {"parent": {"id": oid, "class": cls, "name": o["name"]}}})
            return ok({"annotations": anns, "experimenters": []})
        if m := re.fullmatch(r"/api/v0/m/screens/(\d+)/plates/", path):
            s = w.screens[int(m[1])]
            return page([{"@id": pid, "Name": w.plates[pid]["name"]} for pid in s["plates"]])
        if m := re.fullmatch(r"/api/v0/m/plates/(\d+)/", path):
            p = w.plates[int(m[1])]
            return ok({"data": {"@id": int(m[1]), "Name": p["name"], "omero:wellsampleIndex": [0, p["fields"] - 1]}})
        if m := re.fullmatch(r"/api/v0/m/plates/(\d+)/wells/", path):
            p = w.plates[int(m[1])]
            wells = []
            for k, (wid, imgs) in enumerate(zip(p["well_ids"], p["wells"], strict=True)):
                # Like OMERO: only existing fields are listed, and Images come without Pixels.
                samples = [{"@id": wid * 10 + f, "@type": f"{OME}WellSample", "Image": self._image_obj(i, pixels=False)}
                           for f, i in enumerate(imgs) if i is not None]
                wells.append({"@id": wid, "Column": k % 24, "Row": k // 24, "WellSamples": samples})
            return page(wells)
        if m := re.fullmatch(r"/api/v0/m/projects/(\d+)/datasets/", path):
            pr = w.projects[int(m[1])]
            return page([{"@id": did, "Name": w.datasets[did]["name"],
                          "omero:childCount": len(w.datasets[did]["images"])} for did in pr["datasets"]])
        if m := re.fullmatch(r"/api/v0/m/datasets/(\d+)/images/", path):
            return page([self._image_obj(i, pixels=True) for i in w.datasets[int(m[1])]["images"]])
        if m := re.fullmatch(r"/webclient/imgData/(\d+)/", path):
            return ok(self._imgdata(w.images[int(m[1])]))
        if m := re.fullmatch(r"/webgateway/render_image/(\d+)/(\d+)/(\d+)/", path):
            return self._render(int(m[1]), int(m[2]), int(m[3]), q)
        if m := re.fullmatch(r"/zarr/v0\.1/(\d+)\.zarr/(.*)", path):
            return self._zarr(int(m[1]), m[2])
        raise KeyError(path)

    def _imgdata(self, img: EmuImage) -> dict[str, Any]:
        c, z, hgt, wid = img.data.shape
        chans = []
        for k in range(c):
            lo, hi = img.window(k)
            chans.append({"emissionWave": None, "label": img.labels[k], "color": "FFFFFF", "inverted": False,
                          "reverseIntensity": False, "family": "linear", "coefficient": 1.0,
                          "window": {"min": lo, "max": hi, "start": lo + (hi - lo) * 0.1, "end": hi * 0.9},
                          "active": True})
        return {"id": img.id, "meta": {"imageName": img.name, "imageId": img.id, "pixelsType": img.data.dtype.name,
                                       "wellId": None, "projectName": "Multiple"},
                "perms": {"canAnnotate": False}, "tiles": False, "interpolate": True,
                "size": {"width": wid, "height": hgt, "z": z, "t": 1, "c": c},
                "pixel_size": {"x": 1.0, "y": 1.0, "z": None}, "init_zoom": 0,
                "pixel_range": [0, int(np.iinfo(img.data.dtype).max)], "channels": chans,
                "rdefs": {"model": "color", "projection": "normal", "defaultZ": z // 2, "defaultT": 0,
                          "invertAxis": False}}

    def _render(self, iid: int, z: int, t: int, q: dict[str, str]) -> tuple[int, bytes, str]:
        from PIL import Image

        img = self.world.images[iid]
        if z >= img.data.shape[1] or t != 0:
            return 400, b'{"message": "bad plane"}', "application/json"
        spec = q.get("c", "")
        m = re.fullmatch(r"(\d+)\|([-0-9.]+):([-0-9.]+)\$([0-9A-Fa-f]{6})", spec)
        if not m or q.get("m") != "g":
            return 400, json.dumps({"message": f"unsupported render request c={spec!r}"}).encode(), "application/json"
        c = int(m[1]) - 1
        plane = render(img.data[c, z], float(m[2]), float(m[3]))
        if iid in self.broken:
            return 200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"
        buf = io.BytesIO()
        Image.fromarray(np.stack([plane] * 3, axis=-1)).save(buf, format="PNG")
        return 200, buf.getvalue(), "image/png"

    def _zarr(self, iid: int, key: str) -> tuple[int, bytes, str]:
        import numcodecs

        img = self.world.images[iid]
        if not img.zarr:
            raise KeyError(key)
        c, z, hgt, wid = img.data.shape
        if key == ".zattrs":
            attrs = {"multiscales": [{"version": "0.1", "datasets": [{"path": "0"}]}],
                     "omero": {"channels": [{"label": lb} for lb in img.labels]}}
            return 200, json.dumps(attrs).encode(), "application/json"
        if key == "0/.zarray":
            return 200, json.dumps({"shape": [1, c, z, hgt, wid], "chunks": [1, 1, 1, self.chunk, self.chunk],
                                    "dtype": img.data.dtype.str, "compressor": {"id": "blosc", "cname": "lz4",
                                                                                "clevel": 5, "shuffle": 1,
                                                                                "blocksize": 0},
                                    "fill_value": 0, "order": "C", "filters": None, "zarr_format": 2,
                                    "dimension_separator": "/"}).encode(), "application/json"
        m = re.fullmatch(r"0/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)", key)
        if not m:
            raise KeyError(key)
        _, ci, zi, yi, xi = (int(x) for x in m.groups())
        ch = self.chunk
        block = np.zeros((1, 1, 1, ch, ch), dtype=img.data.dtype)
        part = img.data[ci, zi, yi * ch:(yi + 1) * ch, xi * ch:(xi + 1) * ch]
        block[0, 0, 0, : part.shape[0], : part.shape[1]] = part
        return 200, bytes(numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1).encode(block.tobytes())), \
            "application/octet-stream"
