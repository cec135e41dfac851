"""HTTP downloads that survive interruptions: resume with Range, verify size and checksum, retry with back-off.

A file is written to ``<dest>.part`` and renamed onto ``dest`` only once complete and verified, so a killed
fetch never leaves a half file under the final name and a rerun continues from the bytes already there.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from chadavit.version import __version__
from chadavit.errors import ChadavitError
from chadavit.retry import RetryPolicy

USER_AGENT = f"chadavit/{__version__} (dataset fetch)"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK = 1 << 16


class DownloadError(ChadavitError):
    """A download failed for good (a 4xx status, or every retry used up); the message names the URL."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the published file (wrong size or checksum); nothing is kept."""


class Progress:
    """A tqdm bar on a terminal, plain ``name: 40% (x of y MB)`` lines every 10 % otherwise (logs, CI)."""

    def __init__(self, name: str, total: int | None, say: Callable[[str], None], tty: bool | None = None) -> None:
        self.name, self.total, self.say = name, total, say
        self.done, self.last_decile = 0, -1
        tty = sys.stderr.isatty() if tty is None else tty
        self.bar = None
        if tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False)

    def start(self, have: int) -> None:
        self.done = have
        if self.bar is not None:
            self.bar.update(have)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.total:
            decile = int(10 * self.done / self.total)
            if decile > self.last_decile:
                self.last_decile = decile
                self.say(f"  {self.name}: {100 * self.done / self.total:.0f}% "
                         f"({self.done / 1e6:.1f} of {self.total / 1e6:.1f} MB)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, size: int | None, md5: str | None, url: str) -> None:
    """Raise `ChecksumError` when ``path`` is not the published file."""
    got = path.stat().st_size
    if size is not None and got != size:
        raise ChecksumError(f"{url}: got {got:,} bytes, the published size is {size:,}")
    if md5 is not None:
        digest = file_md5(path)
        if digest != md5.lower():
            raise ChecksumError(f"{url}: MD5 {digest} does not match the published {md5}")


def download(url: str, dest: str | Path, size: int | None = None, md5: str | None = None,
             policy: RetryPolicy | None = None, say: Callable[[str], None] = print,
             tty: bool | None = None) -> Path:
    """Fetch ``url`` to ``dest`` (skipped when ``dest`` exists and verifies), resuming ``dest.part``."""
    dest = Path(dest)
    policy = policy or RetryPolicy(retries=5, backoff=2.0)
    if dest.is_file():
        verify(dest, size, md5, url)
        return dest
    from chadavit.net import unreachable

    if (why := unreachable(url)) is not None:  # offline: one line now, not minutes of retries
        raise DownloadError(f"{url}: {why} Connect, or fetch from a reachable mirror with --base-url")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(policy.retries + 1):
        if attempt:
            wait = policy.delay(attempt - 1)
            say(f"  retrying {url} in {wait:.0f} s ({type(last).__name__}: {last})")
            time.sleep(wait)
        try:
            if _fetch_once(url, part, size, policy, say, tty):
                break
        except DownloadError:
            raise
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.is_file() and (size is None or part.stat().st_size >= size):
                break  # asked beyond the end: the .part is complete (verified below)
            if exc.code not in RETRY_STATUS:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            last = exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            last = exc
    else:
        raise DownloadError(f"{url}: failed after {policy.retries + 1} attempts ({type(last).__name__}: {last}); "
                            f"rerun to resume from the {part.stat().st_size if part.is_file() else 0:,} bytes kept")
    try:
        verify(part, size, md5, url)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


def _fetch_once(url: str, part: Path, size: int | None, policy: RetryPolicy, say: Callable[[str], None],
                tty: bool | None) -> bool:
    """One request; appends to ``part`` from where it ends. True when the body arrived whole."""
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have >= size:
        return True
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=policy.timeout) as resp:
        if have and resp.status != 206:  # the server ignored the Range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        expect = int(length) if length is not None else None
        total = have + expect if expect is not None else size
        if size is not None and total is not None and total != size:
            raise ChecksumError(f"{url}: the server sends {total:,} bytes, the published size is {size:,}")
        bar = Progress(part.name.removesuffix(".part"), total, say, tty)
        bar.start(have)
        got = 0
        watch = policy.stall_watch()  # a trickle never trips the socket timeout: give up on it, resume later
        try:
            with part.open("ab" if have else "wb") as f:
                while True:
                    try:
                        block = resp.read1(CHUNK)  # what has arrived, so the stall watch sees every byte
                    except http.client.IncompleteRead as exc:
                        f.write(exc.partial)
                        raise
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
                    watch.received(len(block), url)
        finally:
            bar.close()
        if expect is not None and got < expect:
            raise http.client.IncompleteRead(b"", expect - got)
    return True
