"""`chadavit datasets fetch`: download each dataset from its official address (or a mirror given as
``--base-url``) and lay it out under ``ROOT/<name>`` exactly as its adapter reads it.

The machinery shared by every dataset's fetch: the `Fetch` record (where files go, where they come from) and
`fetch(name, ...)`, which runs the fetch registered by the dataset's module (``evaluation/datasets/<name>.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chadavit.atomic import write_bytes_atomic
from chadavit.errors import ChadavitError
from chadavit.evaluation.datasets.download import RetryPolicy, download
from chadavit.evaluation.datasets.extract import inside
from chadavit.evaluation.datasets.registry import get


LARGE_BYTES = 1e9  # downloads above this ask first (or need --yes)


class SubsetError(ChadavitError, ValueError):
    """``--subset`` names something the dataset does not have."""


class LargeDownloadError(ChadavitError):
    """A multi-GB download was not confirmed (no ``--yes``, and no terminal to ask on, or the answer was no)."""


@dataclass
class Fetch:
    """One fetch: where files go, where they come from, and how to report progress."""

    name: str
    target: Path
    base_url: str | None = None
    subset: Sequence[str] | None = None
    policy: RetryPolicy | None = None
    say: Callable[[str], None] = print
    tty: bool | None = None
    keep_archives: bool = False
    source: str = "cil"  # Bray images: "cil" (Cell Image Library zips) or "idr" (IDR idr0016 via the IDR client)
    wells: Sequence[str] | None = None  # Bray from IDR: only these wells (e.g. A01)
    idr_url: str | None = None
    yes: bool = False  # --yes: large downloads go ahead without asking
    ask: Callable[[str], bool] | None = None  # asks on a terminal; None: refuse large downloads without --yes

    def confirm(self, what: str, n_bytes: float) -> None:
        """Go on only when ``n_bytes`` is small, ``--yes`` was given, or the user says yes."""
        if n_bytes < LARGE_BYTES or self.yes:
            return
        question = f"{self.name}: {what}: about {n_bytes / 1e9:,.0f} GB to download into {self.target}"
        if self.ask is not None and self.ask(f"{question}. Continue? [y/N] "):
            return
        raise LargeDownloadError(f"{question}; rerun with --yes to download it, or fetch a part with --subset")

    def url(self, official: str, mirror_path: str) -> str:
        """The official URL, or ``BASE_URL/<dataset>/<mirror_path>`` when a mirror is given."""
        return f"{self.base_url.rstrip('/')}/{self.name}/{mirror_path}" if self.base_url else official

    def get(self, official: str, mirror_path: str, dest: Path, size: int | None = None, md5: str | None = None) -> Path:
        url = self.url(official, mirror_path)
        inside(self.target, dest, url)  # every download lands under the dataset's folder, whatever a table said
        self.say(f"fetch {url} -> {dest}")
        return download(url, dest, size=size, md5=md5, policy=self.policy, say=self.say, tty=self.tty)

    @property
    def downloads(self) -> Path:
        return self.target / ".downloads"

    def done_with(self, archive: Path) -> None:
        if not self.keep_archives:
            archive.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


def manual_steps(name: str, target: str) -> str:
    """The manual steps of dataset ``name`` for its folder ``target``."""
    return (get(name).manual or "").replace("{target}", target)


def fetch(name: str, root: str | Path, base_url: str | None = None, subset: Sequence[str] | None = None,
          policy: RetryPolicy | None = None, say: Callable[[str], None] = print, tty: bool | None = None,
          keep_archives: bool = False, source: str = "cil", wells: Sequence[str] | None = None,
          idr_url: str | None = None, yes: bool = False, ask: Callable[[str], bool] | None = None) -> Path:
    """Fetch ``name`` into ``root/<name>`` (what the paper suite reads as ``${data_root}/<name>``); ``source``,
    ``wells`` and ``idr_url`` choose where Bray's images come from. Downloads of more than
    :data:`LARGE_BYTES` need ``yes`` or a yes from ``ask``."""
    dataset = get(name)
    f = Fetch(name, Path(root) / name, base_url, subset, policy, say, tty, keep_archives, source, wells, idr_url,
              yes, ask)
    f.target.mkdir(parents=True, exist_ok=True)
    dataset.fetch(f)
    if f.downloads.is_dir() and not any(f.downloads.iterdir()):
        f.downloads.rmdir()
    write_bytes(f.target / ".chadavit-fetch.json", json.dumps(
        {"dataset": name, "base_url": base_url, "subset": list(subset or [])}, indent=1).encode())
    return f.target
