"""chadavit sets OpenMP's passive waiting before torch loads, and leaves a user's choice alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os, sys; {first}; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"


@pytest.mark.parametrize(("first", "preset", "expected"), [
    ("import chadavit", None, "PASSIVE"),              # the CLI's order: chadavit, then torch
    ("import chadavit", "ACTIVE", "ACTIVE"),           # an explicit policy wins
    ("import torch; import chadavit", None, "unset"),  # too late once torch has loaded OpenMP: no change
])
def test_wait_policy(first: str, preset: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    out = subprocess.run([sys.executable, "-c", SHOW.format(first=first)], env=env, capture_output=True, text=True,
                         check=True).stdout.split()[-1]
    assert out == expected
