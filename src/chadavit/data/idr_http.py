"""The HTTP transport of the IDR client: polite GETs with retries, the public session cookie, JSON paging.

Every request is retried with exponential back-off on timeouts, connection errors, 5xx, 429
(``Retry-After`` honoured) and truncated or undecodable bodies (:class:`BadBody`). The stdlib
``urllib`` is used so that the builder needs no extra dependency. The endpoints are in
:mod:`chadavit.data.idr_client`.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from chadavit.errors import ChadavitError
from chadavit.retry import RetryPolicy
from chadavit.version import __version__

log = logging.getLogger(__name__)

DEFAULT_SERVER = "https://idr.openmicroscopy.org"
USER_AGENT = f"chadavit/{__version__} (IDRCell100k builder; +https://github.com/nicoboou/chadavit)"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = (TimeoutError, socket.timeout, urllib.error.URLError, http.client.HTTPException, ConnectionError,
                   OSError)


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


class IDRTransport:
    """GETs against one IDR-like server (``base_url``) with ``policy``'s retries, safe to share between threads."""

    def __init__(self, base_url: str = DEFAULT_SERVER, *, policy: RetryPolicy | None = None,
                 user_agent: str = USER_AGENT, sleep: Callable[[float], None] = time.sleep,
                 page_limit: int = 500) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.user_agent = user_agent
        self.sleep = sleep
        self.page_limit = page_limit
        self._cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self._cookies))
        self._session_lock = threading.Lock()
        self._session_ready = False
        self.requests_made = 0
        self.retries_made = 0

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
                body = self._get_once(url, session)
                return validate(body) if validate is not None else body
            except urllib.error.HTTPError as exc:
                status, last = exc.code, f"HTTP {exc.code}"
                retry_after = self._retry_after(exc, url, attempt + 1)
            except BadBody as exc:
                last = str(exc)
            except _NETWORK_ERRORS as exc:
                last = f"{exc.__class__.__name__}: {getattr(exc, 'reason', exc)}"
            if attempt + 1 < attempts:
                delay = self.policy.delay(attempt, retry_after)
                self.retries_made += 1
                log.debug("retry %d/%d of %s in %.2fs (%s)", attempt + 1, self.policy.retries, url, delay, last)
                self.sleep(delay)
        raise IDRError(f"{url}: gave up after {attempts} attempts ({last})", url, status, attempts)

    def _get_once(self, url: str, session: bool) -> bytes:
        """One GET: the whole body, or :class:`BadBody` when it is cut short or the session has expired."""
        self.requests_made += 1
        req = urllib.request.Request(url, headers={"User-Agent": self.user_agent, "Accept-Encoding": "identity"})
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
        return body

    @staticmethod
    def _retry_after(exc: urllib.error.HTTPError, url: str, attempts: int) -> float | None:
        """An HTTP error worth retrying: the server's ``Retry-After``; otherwise raise :class:`IDRError`."""
        try:
            exc.read()
        except Exception:  # noqa: BLE001
            pass
        if exc.code == 404:
            raise IDRNotFound(f"{url}: 404 not found", url, 404, attempts) from None
        if exc.code not in RETRY_STATUS:
            raise IDRError(f"{url}: HTTP {exc.code} (not retried)", url, exc.code, attempts) from None
        return _parse_retry_after(exc.headers.get("Retry-After")) if exc.headers else None

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
