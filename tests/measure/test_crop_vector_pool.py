"""The CellProfiler crop vectors: the worker pool gives the serial numbers, and the worker count is read safely."""

from __future__ import annotations

import numpy as np
import pytest

from chadavit.data.synthetic import generate_cells
from chadavit.measure import crop_vector as cv


@pytest.fixture(scope="module")
def crops() -> tuple[list[np.ndarray], list[tuple[str, ...]]]:
    cells = generate_cells(n=cv.MIN_CROPS_FOR_POOL + 4, size=48, channels=("DNA", "protein"), seed=3)
    return cells.images, [cells.channel_names] * len(cells.images)


def test_pool_gives_the_serial_vectors_in_order(crops) -> None:
    images, names = crops
    serial = cv.crop_vectors(images, names, workers=1)
    pooled = cv.crop_vectors(images, names, workers=2)
    assert len(pooled) == len(images)
    np.testing.assert_array_equal(np.stack(pooled), np.stack(serial))
    assert not np.allclose(serial[0], serial[1])  # the crops differ, so order matters


def test_few_crops_are_measured_in_this_process(crops, monkeypatch) -> None:
    images, names = crops
    monkeypatch.setattr(cv, "_get_pool", lambda workers: pytest.fail("no pool for a few crops"))
    assert len(cv.crop_vectors(images[:3], names[:3], workers=2)) == 3


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("3", 3), ("0", 1), ("two", 1)])
def test_worker_count_from_the_environment(monkeypatch, value, expected) -> None:
    monkeypatch.setenv(cv.WORKERS_ENV, value)
    assert cv.default_workers() == expected


def test_library_use_measures_in_one_process_unless_asked(monkeypatch) -> None:
    monkeypatch.delenv(cv.WORKERS_ENV, raising=False)
    monkeypatch.setattr(cv, "_started_by_chadavit", lambda: False)
    assert cv.default_workers() == 1  # a user's unguarded script must not be re-run in spawned workers
    monkeypatch.setattr(cv, "_started_by_chadavit", lambda: True)
    assert 1 <= cv.default_workers() <= 4
