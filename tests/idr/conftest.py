"""Fixtures: an IDR emulator holding a small world that exercises every selection rule."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from chadavit.data.idr_client import IDRClient, RetryPolicy

from .emulator import IDREmulator

N = 5  # images per study in tests
SIZE = 16  # stored plane size in tests


def fast_policy(retries: int = 6) -> RetryPolicy:
    return RetryPolicy(retries=retries, backoff=0.01, max_backoff=0.05, timeout=0.5)


def make_client(emu: IDREmulator, **kw) -> IDRClient:
    kw.setdefault("policy", fast_policy())
    kw.setdefault("zarr_base", emu.url + "/zarr/v0.1")
    kw.setdefault("zarr_studies", {"idr0103"})
    return IDRClient(emu.url, **kw)


def _img(emu: IDREmulator, rng: np.random.Generator, c: int, dtype=np.uint16, z: int = 1, zarr: bool = False):
    h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
    hi = 4000 if dtype == np.uint16 else 250
    data = rng.integers(0, hi, size=(c, z, h, w)).astype(dtype)
    # a gradient so resizing has structure to keep
    data[:, :, : h // 2] //= 2
    return emu.add_image(data, [f"ch{k}-label" for k in range(c)], zarr=zarr)


def populate(emu: IDREmulator, seed: int = 0) -> dict[str, int]:
    """Build the test world; returns the number of images per container."""
    rng = np.random.default_rng(seed)
    im = lambda c, **kw: _img(emu, rng, c, **kw)  # noqa: E731
    # A: a cell screen, 2 plates x 4 wells x 2 fields with two holes -> 14 images
    plates = [[[im(2), im(2)], [im(3), None], [im(1), im(1)], [im(2), im(2)]],
              [[im(4, dtype=np.uint8), im(4, dtype=np.uint8)], [None], [im(2), im(2)], [im(3), im(3)]]]
    emu.add_screen("idr0101-alpha/screenA", plates)
    # B: a cell study with two projects: 5 + 2 images
    emu.add_project("idr0102-beta/experimentA", [[im(1), im(2), im(3)], [im(2), im(1)]])
    emu.add_project("idr0102-beta/experimentB", [[im(5), im(2)]], imaging_method="widefield microscopy")
    # C: a cell screen published as OME-Zarr (raw uint16, Z stacks) -> 6 images
    emu.add_screen("idr0103-gamma/screenA", [[[im(2, z=3, zarr=True), im(2, z=3, zarr=True)],
                                              [im(3, z=3, zarr=True), im(3, z=3, zarr=True)],
                                              [im(1, z=1, zarr=True), im(1, z=1, zarr=True)]]],
                   imaging_method="spinning disk confocal microscopy")
    # D: one image short of N (6 slots, 4 images)
    emu.add_screen("idr0104-short/screenA", [[[im(2), im(2)], [im(2), None], [None, im(2)]]])
    # E: wrong sample type
    emu.add_project("idr0105-tissue/experimentA", [[im(3) for _ in range(8)]], sample_type="tissue",
                    imaging_method="brightfield microscopy")
    # F: an empty project
    emu.add_project("idr0106-empty/experimentA", [])
    return {"idr0101": 14, "idr0102": 7, "idr0103": 6, "idr0104": 4, "idr0105": 8}


QUALIFYING = {"idr0101-alpha", "idr0102-beta", "idr0103-gamma"}


@pytest.fixture
def emu() -> Iterator[IDREmulator]:
    with IDREmulator(max_limit=3, slow_seconds=0.8) as e:
        populate(e)
        yield e
