"""Issue 22 item 20: offline, an `hf:` model loads from the cache at once with one warning, or fails in seconds
with one line (the Hub load took 26 s with duplicated warnings)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from chadavit.models import HubError, load_from_hub

from .conftest import official_model, official_repo_files


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_hub_uses_the_cache_with_one_warning(mirror, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    mirror.add("me/cached", official_repo_files(official_model()))
    first = load_from_hub("hf:me/cached")  # online: now in the cache
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # the network is gone
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
        again = load_from_hub("hf:me/cached")
    assert time.monotonic() - t0 < 10
    assert again.config.revision == first.config.revision
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "using the cached copy" in warnings[0] and "offline" in warnings[0]
    t0 = time.monotonic()
    with pytest.raises(HubError, match="hf:me/never config.json: the endpoint .* cannot be reached .*offline"):
        load_from_hub("hf:me/never")
    assert time.monotonic() - t0 < 10
