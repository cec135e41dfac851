"""Bray et al. plates from IDR (idr0016 screenA) with the project's IDR client, written in the layout the Bray
adapter reads: ``images/<plate>-<Channel>/cdp2bioactives_<well>_s<site>_w<N>idr<image id>.tif``.

Raw 16-bit planes come from IDR's OME-Zarr copy where the client has one configured; otherwise each channel is
IDR's 8-bit rendering of its full range (said in the output: intensities are then rescaled per image).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tifffile

from chadavit.errors import ChadavitError
from chadavit.evaluation.datasets.extract import publish_dir, scratch_dir

STUDY = "idr0016"
ROWS = "ABCDEFGHIJKLMNOP"


class IDRFetchError(ChadavitError):
    """IDR does not have what was asked for (study, plate, channel)."""


def find_screen(client: object, study: str = STUDY) -> int:
    screens = [s for s in client.screens() if str(s.get("Name", "")).startswith(study)]  # type: ignore[attr-defined]
    pick = [s for s in screens if "screenA" in str(s.get("Name", ""))] or screens
    if not pick:
        raise IDRFetchError(f"IDR has no screen named {study}...; is the server an IDR?")
    return int(pick[0]["@id"])


def fetch_plates_from_idr(client: object, target: Path, plates: Sequence[str], channels: Sequence[str],
                          wells: Sequence[str] | None = None, say: Callable[[str], None] = print,
                          page: int = 100) -> None:
    """Every field of ``plates`` (only ``wells`` such as ``A01`` when given), one TIFF per channel."""
    sid = find_screen(client)
    by_name = {str(p.get("Name")): int(p["@id"]) for p in client.screen_plates(sid)}  # type: ignore[attr-defined]
    missing = [p for p in plates if p not in by_name]
    if missing:
        raise IDRFetchError(f"IDR {STUDY} has no plate(s) {missing} (plates are named by barcode, e.g. 24277)")
    want = {w.upper() for w in wells} if wells else None
    for plate in plates:
        dests = {c: target / "images" / f"{plate}-{c}" for c in channels}
        if all(d.is_dir() for d in dests.values()):
            say(f"{plate}: present, skipped")
            continue
        tmp = scratch_dir(target, f"idr-{plate}")
        out = {c: tmp / f"{plate}-{c}" for c in channels}
        for d in out.values():
            d.mkdir()
        n_fields, rendered, offset = 0, 0, 0
        while True:
            items = client.plate_wells(by_name[plate], offset, page)  # type: ignore[attr-defined]
            if not items:
                break
            offset += len(items)
            for w in items:
                well = f"{ROWS[int(w['Row'])]}{int(w['Column']) + 1:02d}"
                if want is not None and well not in want:
                    continue
                for site, sample in enumerate(w.get("WellSamples") or [], 1):
                    iid = int(sample["Image"]["@id"])
                    planes, raw = _planes(client, iid, channels)
                    rendered += not raw
                    for k, c in enumerate(channels):
                        tifffile.imwrite(out[c] / f"cdp2bioactives_{well.lower()}_s{site}_w{k + 1}idr{iid}.tif",
                                         planes[c])
                    n_fields += 1
            if len(items) < page:
                break
        for c in channels:
            publish_dir(out[c], dests[c])
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"{plate}: {n_fields} field(s) from IDR {STUDY}" + (
            f" ({rendered} as IDR's 8-bit renderings, no OME-Zarr copy)" if rendered else " (raw OME-Zarr planes)"))


def _planes(client: object, iid: int, channels: Sequence[str]) -> tuple[dict[str, np.ndarray], bool]:
    meta = client.img_data(iid)  # type: ignore[attr-defined]
    labels = [str(x) for x in meta.channel_labels]
    absent = [c for c in channels if c not in labels]
    if absent:
        raise IDRFetchError(f"IDR image {iid}: channels {absent} not among its channels {labels}")
    raw = None
    url = client.zarr_image_url(iid, STUDY)  # type: ignore[attr-defined]
    if url is not None:
        raw = client.zarr_plane(url, 0, 0)  # type: ignore[attr-defined]
    if raw is not None:
        return {c: np.ascontiguousarray(raw[labels.index(c)]) for c in channels}, True
    return {c: client.render_channel(iid, 0, 0, labels.index(c), meta.windows[labels.index(c)])  # type: ignore
            for c in channels}, False
