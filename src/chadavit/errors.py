"""The one error base class: errors a user can cause derive from it and the CLI prints them as one line."""

from __future__ import annotations


class ChadavitError(Exception):
    """Bad input, settings or environment: `chadavit` prints `error: <message>` and exits with status 2."""
