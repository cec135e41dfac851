"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("CHADAVIT_SHARED", REPO_ROOT.parent / "shared"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` (reference data and fixtures); tests that need it skip visibly when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DIR} (set CHADAVIT_SHARED); CI always provides it")
    return SHARED_DIR


@pytest.fixture
def cli_error(capsys: pytest.CaptureFixture[str]):  # noqa: ANN201 - returns the runner below
    """Run ``chadavit ARGV`` that must fail as a user mistake: exit 2 and one ``error: ...`` line (returned)."""
    from chadavit.cli.main import main

    def run(argv: list[str]) -> str:
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        err = [line for line in capsys.readouterr().err.splitlines() if "WARNING" not in line]
        assert rc == 2 and err and err[-1].startswith("error: "), (rc, err)
        return err[-1]

    return run


@pytest.fixture
def damaged_dataset(tmp_path):  # noqa: ANN001, ANN201
    """A 3-image dataset whose stored planes are gone: zarr reads them as zeros (issue 22 item 3)."""
    import numpy as np

    from chadavit.data.dataset import DatasetWriter, open_dataset

    rng = np.random.default_rng(5)
    with DatasetWriter(tmp_path / "damaged") as w:
        for i in range(3):
            w.add(rng.integers(1, 60000, (2, 24, 24)).astype(np.uint16), f"im{i}", ["DNA", "Actin"])
    shards = [p for p in (tmp_path / "damaged" / "planes.zarr").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert shards
    for p in shards:
        p.unlink()
    return open_dataset(tmp_path / "damaged")
