"""A local HTTP mirror on 127.0.0.1 for the fetch tests: serves bytes from a dict, honours Range, can cut a
response short (an interrupted download) and logs every request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Mirror:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}  # path -> bytes to send before dropping the connection (once)
        self.log: list[tuple[str, str | None]] = []
        self.fail: dict[str, int] = {}  # path -> number of 503 answers before serving it
        self.trickle: dict[str, float] = {}  # path -> seconds between single bytes (a server that stalls)
        self.ignore_range = False  # answer 200 with the whole body even when a Range is asked
        self.url = ""


def _handler(m: Mirror) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            rng = self.headers.get("Range")
            m.log.append((path, rng))
            if path not in m.files:
                self.send_error(404, "Not Found")
                return
            if m.fail.get(path, 0) > 0:
                m.fail[path] -= 1
                self.send_error(503, "Busy")
                return
            body = m.files[path]
            if m.ignore_range:
                rng = None
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            if start >= len(body) and body:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            part = body[start:]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if path in m.cut:
                self.wfile.write(part[: m.cut.pop(path)])
                self.wfile.flush()
                self.close_connection = True
                return
            if path in m.trickle:
                import time

                try:
                    for i in range(len(part)):
                        self.wfile.write(part[i : i + 1])
                        self.wfile.flush()
                        time.sleep(m.trickle[path])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on us
                return
            self.wfile.write(part)

    return H


@contextmanager
def serve() -> Iterator[Mirror]:
    m = Mirror()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(m))
    m.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield m
    finally:
        server.shutdown()
        server.server_close()
