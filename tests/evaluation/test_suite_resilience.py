"""A suite never dies halfway: a failing task is reported, the others run, finished tasks survive a kill and a
rerun resumes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from chadavit.evaluation.suite import run_suite

from .test_suite import blobs_suite

SUITE = """
name: resilient
seeds: [0]
datasets:
  blobs: {adapter: npz, path: "${data_root}/blobs.npz"}
tasks:
  - {name: first, dataset: blobs, protocol: knn, label: label, k: 5}
  - {name: broken, dataset: blobs, protocol: reconstruction, target_channel: no_such_channel}
  - {name: third, dataset: blobs, protocol: linear, label: label, epochs: 5}
"""


@pytest.fixture()
def suite_file(tmp_path: Path) -> Path:
    return blobs_suite(tmp_path, SUITE)


def test_failing_task_is_reported_and_others_run(suite_file: Path, tmp_path: Path):
    said: list[str] = []
    summary = run_suite(suite_file, ["pixels"], tmp_path / "out", figures=False, progress=False, baselines=False,
                        say=said.append)
    assert set(summary["task"]) == {"first", "third"}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Failures" in md and "| pixels | broken | SuiteError: task 'broken'" in md
    assert any(s.startswith("FAILED pixels / broken") for s in said)
    assert len(list((tmp_path / "out" / "tasks").glob("*.csv"))) == 2


def test_killed_run_keeps_finished_tasks_and_rerun_resumes(suite_file: Path, tmp_path: Path):
    out = tmp_path / "out"

    def kill_after_first(msg: str) -> None:
        if msg.startswith("pixels") and "first" in msg:
            raise KeyboardInterrupt  # the run is killed right after the first task finished

    with pytest.raises(KeyboardInterrupt):
        run_suite(suite_file, ["pixels"], out, figures=False, progress=False, baselines=False, say=kill_after_first)
    assert len(list((out / "tasks").glob("*.csv"))) == 1
    first = pd.read_csv(out / "results_per_seed.csv")
    assert set(first["task"]) == {"first"}  # written as it finished
    said: list[str] = []
    summary = run_suite(suite_file, ["pixels"], out, figures=False, progress=False, baselines=False, say=said.append)
    assert any("first" in s and "resumed" in s for s in said)
    assert not any("third" in s and "resumed" in s for s in said)
    assert set(summary["task"]) == {"first", "third"}
    again = pd.read_csv(out / "results_per_seed.csv")
    assert again[again.task == "first"]["value"].tolist() == first["value"].tolist()
