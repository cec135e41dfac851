"""CellProfiler crops measured ahead in background workers: the same vectors, no crop measured twice, a job not
started when its crop is read is taken back and measured there, a failed worker only loses the head start, and
library use starts nothing."""

from __future__ import annotations

import numpy as np
import pytest

from chadavit.data.synthetic import generate_cells
from chadavit.measure import crop_vector as cv
from chadavit.models.references import CellProfilerEncoder, ahead


@pytest.fixture(scope="module")
def crops() -> tuple[list[np.ndarray], list[tuple[str, ...]]]:
    cells = generate_cells(n=20, size=48, channels=("DNA", "protein"), seed=5)
    return cells.images, [cells.channel_names] * len(cells.images)


@pytest.fixture(autouse=True)
def _clean_store():
    ahead.shutdown()
    yield
    ahead.shutdown()


def test_vectors_measured_ahead_are_the_serial_vectors(crops, monkeypatch) -> None:
    images, names = crops
    serial = CellProfilerEncoder().vectors(images, names)
    enc = CellProfilerEncoder()
    assert enc.measure_ahead(images, names) == 0  # library use: no workers unless asked for
    monkeypatch.setenv(cv.WORKERS_ENV, "2")
    assert enc.measure_ahead(images, names) == len(images)
    assert enc.measure_ahead(images[:3], names[:3]) == 0  # started once
    ahead.wait()
    monkeypatch.setattr("chadavit.models.references.cellprofiler.crop_vectors",
                        lambda ims, nms: pytest.fail("a crop measured ahead was measured again") if ims else [])
    got = enc.vectors(images, names)
    np.testing.assert_array_equal(got, serial)
    assert not np.allclose(serial[0], serial[1])  # the crops differ, so order matters
    assert not any(ahead.is_pending(ahead.crop_key(im, nm)) for im, nm in zip(images, names))  # collected


def test_a_job_not_started_is_measured_by_the_reader(crops, monkeypatch) -> None:
    images, names = crops
    serial = CellProfilerEncoder().vectors(images, names)
    monkeypatch.setenv(cv.WORKERS_ENV, "2")
    enc = CellProfilerEncoder()
    assert enc.measure_ahead(images, names) == len(images)  # one worker (the probes' thread has the other core)
    here: list[int] = []

    def counted(ims, nms):
        here.append(len(ims))
        return cv.crop_vectors(ims, nms, workers=1)

    monkeypatch.setattr("chadavit.models.references.cellprofiler.crop_vectors", counted)
    got = enc.vectors(images, names)  # at once: the worker is still starting, most jobs are queued
    np.testing.assert_array_equal(got, serial)
    assert 0 < sum(here) < len(images)  # queued crops measured here, the running jobs' crops collected


def test_a_failed_job_is_measured_here(crops, monkeypatch) -> None:
    images, names = crops
    monkeypatch.setattr(ahead, "crop_vectors", _broken)
    monkeypatch.setenv(cv.WORKERS_ENV, "2")
    enc = CellProfilerEncoder()
    calls = []

    def serial(ims, nms):
        calls.append(len(ims))
        return cv.crop_vectors(ims, nms, workers=1)

    monkeypatch.setattr("chadavit.models.references.cellprofiler.crop_vectors", serial)
    # the pool cannot pickle a monkeypatched function, or the function raises: either way the job fails
    assert ahead.measure_ahead(images[:4], names[:4], workers=2) == 4
    got = enc.vectors(images[:4], names[:4])
    assert sum(calls) == 4
    np.testing.assert_array_equal(got, np.stack(cv.crop_vectors(images[:4], names[:4], workers=1)).astype(np.float32))


def _broken(images, names, workers):  # pragma: no cover - runs (or fails to pickle) for the worker
    raise RuntimeError("worker lost")


def test_queued_pixels_are_bounded(crops, monkeypatch) -> None:
    images, names = crops
    monkeypatch.setenv(cv.WORKERS_ENV, "2")
    monkeypatch.setattr(ahead, "MAX_QUEUED_BYTES", 3 * ahead.CHUNK * images[0].nbytes)
    assert ahead.measure_ahead(images, names) == 3 * ahead.CHUNK  # the rest is measured when read
    got = CellProfilerEncoder().vectors(images, names)
    np.testing.assert_array_equal(got, CellProfilerEncoder().vectors(images, names))
