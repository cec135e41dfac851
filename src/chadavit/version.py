"""The installed chadavit version: a leaf module (standard library only), so that anything may import it.

Why a leaf: the version used to live in the package face (``chadavit/__init__``), which imports torch and
pandas; every module that stamped files with the version pulled those in, and ``chadavit --help`` took 4.6 s.
The number comes from the installed distribution's metadata (``pyproject.toml`` is the one place it is
written); a source tree that was never installed reports ``0+unknown``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chadavit")
except PackageNotFoundError:  # running from a source tree that pip never installed
    __version__ = "0+unknown"
