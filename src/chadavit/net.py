"""Is a server reachable at all? One quick TCP connect, so that an offline machine fails in seconds with one
clear line instead of minutes of retries and timeouts (``datasets fetch``, ``hf:`` models).

Only a connect is tried (no request): a host that answers slowly or with errors is left to the callers'
own retry policy. Where a proxy is configured (``HTTPS_PROXY`` ...), a direct connect says nothing, so the
check is skipped. Answers are remembered for the process, per host and port.
"""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from functools import lru_cache

PROBE_TIMEOUT_S = 5.0


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``url``'s server cannot be reached (name lookup or connection failure), or None when it can."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if urllib.request.getproxies():
        return None  # the proxy, not a direct connection, decides
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _probe(parts.hostname, port, timeout)


@lru_cache(maxsize=64)
def _probe(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"cannot resolve {host} ({exc.strerror or exc}); is this machine offline?"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s; is this machine offline?"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc}); is this machine offline?"
