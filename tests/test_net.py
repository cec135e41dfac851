"""Issue 22 item 20: offline, a download fails in seconds with one clear line (the reachability probe)."""

from __future__ import annotations

import socket
import time

import pytest

from chadavit.net import unreachable


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_probe_says_why_a_server_cannot_be_reached() -> None:
    assert "cannot connect to 127.0.0.1" in unreachable(f"http://127.0.0.1:{closed_port()}/x")
    assert "cannot resolve nothing.invalid" in unreachable("https://nothing.invalid/file.zip")
    with socket.socket() as s:  # a listening server is reachable
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert unreachable(f"http://127.0.0.1:{s.getsockname()[1]}/") is None
    assert unreachable("file:///tmp/x") is None  # not a network URL


def test_probe_steps_aside_for_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert unreachable("https://nothing-behind-a-proxy.invalid/") is None


def test_offline_dataset_fetch_fails_fast_with_one_line(tmp_path, cli_error) -> None:
    t0 = time.monotonic()
    line = cli_error(["datasets", "fetch", "bbbc021", "--root", str(tmp_path), "--base-url",
                      f"http://127.0.0.1:{closed_port()}", "--retries", "5", "--backoff", "2"])
    assert time.monotonic() - t0 < 10  # five retries with back-off took 62 s and more
    assert "cannot connect to 127.0.0.1" in line and "offline" in line and "--base-url" in line


def test_offline_idr_plan_fails_fast_with_one_line(cli_error) -> None:
    t0 = time.monotonic()
    line = cli_error(["idr", "plan", "--server", f"http://127.0.0.1:{closed_port()}", "--backoff", "2"])
    assert time.monotonic() - t0 < 10
    assert "offline" in line and "--studies-table" in line
