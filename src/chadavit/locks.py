"""One writer per output: an exclusive lock held for as long as a process writes a dataset or an embed output.

The lock is an OS advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on a small hidden
``.NAME.lock`` file beside the target (inside it for a folder such as a dataset). The operating system
drops it when the process ends, however it ends, so a killed run never leaves a lock that blocks the next
one. A second writer is refused at once with :class:`LockedError`, which names the target and the
process holding it. Whoever holds the lock may delete the hidden ``.NAME.tmp-PID`` files a killed writer
left (:mod:`chadavit.atomic`): no live process can be writing them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from chadavit.errors import ChadavitError


class LockedError(ChadavitError):
    """Another process is writing the same target; the message names the target and that process."""


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class WriteLock:
    """Exclusive lock on ``lock_file`` for writing ``target``; use as a context manager or call release()."""

    _fd: int | None = None

    def __init__(self, target: str | os.PathLike[str], lock_file: str | os.PathLike[str], what: str = "") -> None:
        self.target = Path(target)
        self.path = Path(lock_file)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ChadavitError(f"{self.target}: cannot write there ({exc.strerror or exc})") from exc
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise LockedError(f"{self.target}: another process{holder} is writing it{what}; wait for it to end "
                              "(or stop it), then run again")
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock; the empty file stays (no unlink race)
            self._fd = None

    def __enter__(self) -> WriteLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, AttributeError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def lock_folder(folder: str | os.PathLike[str], what: str = "") -> WriteLock:
    """Lock a folder that one process writes at a time (a dataset directory): ``FOLDER/.lock``."""
    folder = Path(folder)
    return WriteLock(folder, folder / ".lock", what)


def lock_file(path: str | os.PathLike[str], what: str = "") -> WriteLock:
    """Lock an output file that one process writes at a time: the hidden ``.NAME.lock`` beside it."""
    path = Path(path)
    return WriteLock(path, path.with_name(f".{path.name}.lock"), what)


def remove_stale_temps(folder: str | os.PathLike[str], names: Iterable[str] = ("*",)) -> list[Path]:
    """Delete the ``.NAME.tmp-PID`` files a killed writer left for the given names (globs); call under the lock."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for name in names:
        for stale in folder.glob(f".{name}.tmp-*"):
            if stale.is_file():
                stale.unlink(missing_ok=True)
                removed.append(stale)
    return removed
