"""The ways a training run stops early on purpose, each a one-line user-facing error."""

from __future__ import annotations

from chadavit.errors import ChadavitError


class DatasetTooSmallError(ChadavitError, ValueError):
    """Fewer images than one (global) batch: no step could ever run."""


class NonFiniteLossError(ChadavitError, FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class TrainingInterrupted(ChadavitError):
    """SIGINT/SIGTERM arrived: a checkpoint was saved at the step reached; the message says how to resume."""


class CollapseStop(ChadavitError):
    """``train.stop_on_collapse`` stopped a collapsed run after saving a checkpoint."""
