"""A local stand-in for the Hugging Face Hub's file endpoint, for tests (127.0.0.1 only).

Serves ``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{filename}`` from files held in memory, with
the headers ``huggingface_hub.hf_hub_download`` relies on: ``X-Repo-Commit`` (the resolved commit),
``ETag`` (content hash), ``Content-Length``, and ``X-Error-Code`` (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``) on 404s. Every request is logged in ``requests``.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class HubMirror:
    """``repos[repo_id] = {"refs": {"main": commit}, "commits": {commit: {filename: bytes}}}``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def _fail(self, status: int, code: str) -> None:
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _serve(self, body: bool) -> None:
                mirror.requests.append((self.command, self.path))
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._fail(404, "RepoNotFound")
                repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if repo not in mirror.repos:
                    return self._fail(404, "RepoNotFound")
                entry = mirror.repos[repo]
                commit = entry["refs"].get(revision, revision)
                if commit not in entry["commits"]:
                    return self._fail(404, "RevisionNotFound")
                files = entry["commits"][commit]
                if filename not in files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                data = files[filename]
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` to ``repo_id`` on ``branch``; returns the 40-hex commit id."""
        commit = hashlib.sha1(repr(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items())).encode()
                              + repo_id.encode() + branch.encode() + str(len(self.repos)).encode()).hexdigest()
        entry = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        entry["commits"][commit] = dict(files)
        entry["refs"][branch] = commit
        return commit

    def __enter__(self) -> HubMirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
