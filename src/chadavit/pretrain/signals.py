"""Loader workers at a graceful stop: shielded from the signals (:mod:`chadavit.signals`), stopped by the loop."""

from __future__ import annotations

from typing import Any


def shutdown_workers(loader: Any) -> None:
    """Stop a DataLoader's persistent workers now, cleanly (they exit on the loader's own shutdown message).

    Why: shielded workers ignore SIGTERM, so they must not be left for the interpreter's exit, which
    terminates daemonic children with SIGTERM and waits for them. ``_shutdown_workers`` is the call
    PyTorch itself makes when an iterator is garbage-collected; without it (other loaders) this does nothing.
    """
    it = getattr(loader, "_iterator", None)
    stop = getattr(it, "_shutdown_workers", None)
    if callable(stop):
        stop()
        loader._iterator = None
