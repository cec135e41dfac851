"""Download a plan into a chadavit dataset: concurrent fetches, one writer thread, resumable, shardable.

Each planned image is fetched (OME-Zarr raw plane where published, else one 8-bit render per
channel), every channel is resized to ``size x size`` and the image is stored with its provenance.
Downloads run in ``workers`` threads; all writes go through the calling thread, which owns the
:class:`~chadavit.data.dataset.DatasetWriter`. Stored images are published (made readable and
skipped by a re-run) every ``flush_every`` images and at least every ``flush_seconds``, and on
exit, including Ctrl-C and SIGTERM (the CLI turns SIGTERM into an interrupt), so a SIGKILL loses at
most the last ``flush_seconds`` of downloads. Images already in the output are skipped, so a re-run
after a crash or after failures only fetches what is missing. Failures that exhausted their retries
are written to ``DIR/failures.csv`` (atomically) and make :func:`build` report them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chadavit.errors import ChadavitError
from chadavit.data.idr_client import IDRClient, IDRError
from chadavit.idr.plan import write_table
from chadavit.sharding import parse_shard, shard_of  # noqa: F401 - parse_shard: the CLI imports it from here

log = logging.getLogger(__name__)

FAILURES_FILE = "failures.csv"
FLUSH_SECONDS = 30.0  # publish stored images at least this often: a kill loses at most this much work


class BuildError(ChadavitError, ValueError):
    """A build cannot start: a bad ``--shard``, or an output folder made with other settings."""


def image_key(idr_image_id: int | str) -> str:
    """The dataset ``image_id`` of an IDR image (prefixed so it cannot clash with other sources)."""
    return f"idr:{int(idr_image_id)}"


def resize_plane(plane: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize one 2-D plane to ``size`` (bilinear, anti-aliased when shrinking), keeping its dtype.

    Integer planes are rounded and clipped back to their dtype's range; this function is the single
    definition of the stored pixels (tests apply it to what the server sent).
    """
    from skimage.transform import resize

    h, w = (size, size) if isinstance(size, int) else size
    plane = np.asarray(plane)
    if plane.shape == (h, w):
        return plane.copy()
    out = resize(plane.astype(np.float64), (h, w), order=1, mode="reflect", anti_aliasing=plane.shape[0] > h or
                 plane.shape[1] > w, preserve_range=True)
    if plane.dtype.kind in "ui":
        info = np.iinfo(plane.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(plane.dtype)
    return out.astype(np.float32)


def shard_plan(plan: pd.DataFrame, shard: tuple[int, int]) -> pd.DataFrame:
    """The rows of shard ``i`` of ``n``: chosen by a hash of the image id, so every machine computes the same split
    from the same plan and each image belongs to exactly one shard."""
    i, n = shard
    if n == 1:
        return plan.reset_index(drop=True)
    h = plan["image_id"].map(lambda x: shard_of(str(int(x)), n))
    return plan[h == i].reset_index(drop=True)


@dataclass
class Fetched:
    row: dict[str, Any]
    image: np.ndarray
    channel_names: list[str]
    extra: dict[str, Any]


def fetch_image(client: IDRClient, row: dict[str, Any], size: int) -> Fetched:
    """Fetch one planned image (middle Z, first T), all channels, resized to ``size``."""
    iid = int(row["image_id"])
    meta = client.img_data(iid)
    z, t = meta.size_z // 2, 0
    planes = None
    source = "rendered_8bit"
    zurl = client.zarr_image_url(iid, str(row.get("study", "")))
    if zurl is not None:
        raw = client.zarr_plane(zurl, z, t)
        if raw is not None:
            if raw.shape[0] != meta.size_c or raw.shape[1:] != (meta.size_y, meta.size_x):
                raise IDRError(f"image {iid}: OME-Zarr plane {raw.shape} does not match imgData "
                               f"({meta.size_c}, {meta.size_y}, {meta.size_x})", zurl)
            planes = [raw[c] for c in range(raw.shape[0])]
            source = "raw_zarr"
    if planes is None:
        planes = [client.render_channel(iid, z, t, c, meta.windows[c]) for c in range(meta.size_c)]
        for c, p in enumerate(planes):
            if p.shape != (meta.size_y, meta.size_x):
                raise IDRError(f"image {iid} channel {c}: rendered {p.shape}, imgData says "
                               f"{(meta.size_y, meta.size_x)}")
    image = np.stack([resize_plane(p, size) for p in planes])
    if image.dtype.kind == "i" or image.dtype.name not in ("uint8", "uint16", "float32"):
        image = image.astype(np.float32)
    extra = {
        "study": str(row.get("study", "")), "container": str(row.get("container", "")),
        "original_height": meta.size_y, "original_width": meta.size_x, "pixel_type": meta.pixel_type,
        "idr_image_id": iid, "pixel_source": source, "z": z, "t": t, "size_z": meta.size_z, "size_t": meta.size_t,
        "study_type": str(row.get("study_type", "") or ""), "server": client.base_url,
    }
    return Fetched(row, image, meta.channel_labels, extra)


@dataclass
class BuildResult:
    planned: int
    already_done: int
    written: int
    failures: pd.DataFrame
    missing: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing and not len(self.failures)


def read_failures(out: str | Path) -> pd.DataFrame:
    p = Path(out) / FAILURES_FILE
    return pd.read_csv(p) if p.is_file() else pd.DataFrame(columns=["image_id", "study", "error", "attempts", "time"])


def _failure_row(r: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    return {"image_id": int(r["image_id"]), "study": r.get("study", ""), "error": f"{exc.__class__.__name__}: {exc}",
            "attempts": getattr(exc, "attempts", 0), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _save_failures(fail: pd.DataFrame, out: Path) -> None:
    """``out/failures.csv`` holds ``fail`` (written atomically), or is gone when there are none."""
    fpath = out / FAILURES_FILE
    if len(fail):
        write_table(fail, fpath)
    elif fpath.exists():
        os.remove(fpath)


class _Fetcher:
    """Keeps ``2 * workers`` downloads of ``todo`` in flight in a thread pool."""

    def __init__(self, client: IDRClient, todo: list[dict[str, Any]], size: int, workers: int) -> None:
        self.client, self.size, self.it = client, size, iter(todo)
        self.window = max(1, workers) * 2
        self.pending: dict[Future[Fetched], dict[str, Any]] = {}
        self.ex = ThreadPoolExecutor(max(1, workers), thread_name_prefix="idr-fetch")

    def refill(self) -> None:
        while len(self.pending) < self.window:
            r = next(self.it, None)
            if r is None:
                return
            self.pending[self.ex.submit(fetch_image, self.client, r, self.size)] = r

    def finished(self, timeout: float | None) -> list[tuple[dict[str, Any], Future[Fetched]]]:
        """The downloads that finish first (waiting at most ``timeout`` s, or for one when ``None``)."""
        done, _ = wait(list(self.pending), timeout=timeout, return_when=FIRST_COMPLETED)
        return [(self.pending.pop(fut), fut) for fut in done]

    def close(self, interrupted: bool) -> None:
        """Stop; on an interrupt, do not wait for queued downloads."""
        self.ex.shutdown(wait=not interrupted, cancel_futures=True)


class _FlushTimer:
    """Publishes stored images at least every ``flush_seconds`` (the writer itself does every ``flush_every``)."""

    def __init__(self, writer: Any, flush_every: int, flush_seconds: float) -> None:
        self.writer, self.flush_every, self.flush_seconds = writer, flush_every, flush_seconds
        self.last, self.unflushed = time.monotonic(), 0

    def timeout(self) -> float | None:
        """How long the loop may wait for a download before the next publication is due."""
        return max(self.last + self.flush_seconds - time.monotonic(), 0.01) if self.unflushed else None

    def stored(self) -> None:
        self.unflushed += 1
        if self.unflushed >= self.flush_every:  # the writer has just published them itself
            self.unflushed, self.last = 0, time.monotonic()

    def tick(self) -> None:
        if self.unflushed and time.monotonic() - self.last >= self.flush_seconds:
            self.writer.flush()
            log.debug("published %d image(s) after %.0f s", self.unflushed, time.monotonic() - self.last)
            self.unflushed, self.last = 0, time.monotonic()


def _store(writer: Any, r: dict[str, Any], fut: Future[Fetched], failures: list[dict[str, Any]]) -> bool:
    """Hand a finished download to ``writer``, or record its failure; True when stored."""
    try:
        f = fut.result()
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, the run goes on
        log.warning("image %s (%s) failed: %s", r["image_id"], r.get("study"), exc)
        failures.append(_failure_row(r, exc))
        return False
    writer.add(f.image, image_key(r["image_id"]), f.channel_names, source=f.extra["study"],
               imaging_method=str(r.get("imaging_method", "") or ""), **f.extra)
    return True


def build(plan: pd.DataFrame, out: str | Path, client: IDRClient, *, size: int = 224, workers: int = 2,
          shard: tuple[int, int] = (0, 1), progress: bool = True, flush_every: int = 64,
          on_image: Callable[[int], None] | None = None, flush_seconds: float = FLUSH_SECONDS) -> BuildResult:
    """Fetch every planned image of this shard that ``out`` does not hold yet; see the module docstring.

    ``on_image(k)`` is called after the k-th image of this run was queued for writing (tests use it to
    crash half-way).
    """
    from tqdm import tqdm

    from chadavit.data.dataset import DatasetWriter

    t0 = time.perf_counter()
    out = Path(out)
    rows = shard_plan(plan, shard)
    attrs = {"builder": "chadavit idr build", "server": client.base_url, "size": size,
             "shard": f"{shard[0]}/{shard[1]}"}
    failures: list[dict[str, Any]] = []
    written = 0
    with DatasetWriter(out, flush_every=flush_every, attrs=attrs) as writer:
        todo = [r for r in rows.to_dict("records") if image_key(r["image_id"]) not in writer.image_ids]
        bar = tqdm(total=len(todo), desc=f"idr build {shard[0]}/{shard[1]}", unit="img", disable=not progress,
                   dynamic_ncols=True)
        fetcher, timer = _Fetcher(client, todo, size, workers), _FlushTimer(writer, flush_every, flush_seconds)
        interrupted = False
        try:
            fetcher.refill()
            while fetcher.pending:
                for r, fut in fetcher.finished(timer.timeout()):
                    if _store(writer, r, fut, failures):
                        written += 1
                        timer.stored()
                        if on_image is not None:
                            on_image(written)
                    bar.update(1)
                    bar.set_postfix(failed=len(failures), refresh=False)
                timer.tick()
                fetcher.refill()
        except BaseException:
            # Stop handing out work and do not wait for queued downloads; the writer flushes complete images.
            interrupted = True
            raise
        finally:
            fetcher.close(interrupted)
            bar.close()
        stored = writer.image_ids
    fail_df = pd.DataFrame(failures, columns=["image_id", "study", "error", "attempts", "time"])
    _save_failures(fail_df, out)
    missing = [int(x) for x in rows["image_id"] if image_key(x) not in stored]
    return BuildResult(len(rows), len(rows) - len(todo), written, fail_df, missing, time.perf_counter() - t0)


def merge(inputs: list[str | Path], out: str | Path) -> tuple[int, pd.DataFrame]:
    """Join shard directories; failures of the shards that are still missing are carried into ``out``."""
    from chadavit.data.dataset import merge_datasets

    ds = merge_datasets([str(p) for p in inputs], out)
    have = set(ds.manifest["image_id"].astype(str))
    fails = [read_failures(p) for p in inputs]
    nonempty = [f for f in fails if len(f)]
    fail = pd.concat(nonempty, ignore_index=True) if nonempty else read_failures(out)
    if len(fail):
        fail = fail[~fail["image_id"].map(image_key).isin(have)].drop_duplicates("image_id")
    _save_failures(fail, Path(out))
    return len(ds), fail
