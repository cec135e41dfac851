"""The suite's exact speed-ups: a probe fitted on the same inputs is not fitted again, the report is rewritten at
most every WRITE_EVERY_S seconds yet always complete when the run stops, and the CellProfiler crops a suite will
read are started ahead (and only those not already cached or finished)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from chadavit.evaluation import ahead as eval_ahead
from chadavit.evaluation import protocols as P
from chadavit.evaluation import suite as S
from chadavit.evaluation.features import load_model_spec
from chadavit.evaluation.suite import run_suite

from .test_suite import blobs_suite

SUITE = """
name: twice
seeds: [0, 1]
datasets:
  blobs: {adapter: npz, path: "${data_root}/blobs.npz"}
tasks:
  - {name: cls, dataset: blobs, protocol: linear, label: label, features: cls, epochs: 5}
  - {name: patch-mean, dataset: blobs, protocol: linear, label: label, features: patch_mean, epochs: 5}
  - {name: kNN, dataset: blobs, protocol: knn, label: label, k: 5}
  - {name: reconstruction, dataset: blobs, protocol: reconstruction, target_channel: protein, epochs: 1,
     width: 0.125, target_size: 8}
"""


@pytest.fixture()
def suite_file(tmp_path: Path) -> Path:
    return blobs_suite(tmp_path, SUITE)


def _count_probes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = P.linear_probe

    def counted(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "linear_probe", counted)
    return calls


def test_a_reference_fits_one_probe_for_its_equal_read_outs(suite_file, tmp_path, monkeypatch) -> None:
    calls = _count_probes(monkeypatch)
    out = run_suite(suite_file, ["raw_pixels"], tmp_path / "ref", figures=False, progress=False, baselines=False)
    assert calls == [0, 1]  # cls and patch_mean are the same vector for a reference: fitted once per seed
    r = pd.read_csv(tmp_path / "ref" / "results_per_seed.csv")
    a, b = (r[(r.task == t) & (r.metric == "top1")]["value"].tolist() for t in ("cls", "patch-mean"))
    assert a == b and len(a) == 2
    assert set(out["task"]) == {"cls", "patch-mean", "kNN", "reconstruction"}


def test_a_model_with_different_read_outs_fits_each(suite_file, tmp_path, monkeypatch) -> None:
    calls = _count_probes(monkeypatch)
    run_suite(suite_file, ["random:chada_vit_nano"], tmp_path / "m", figures=False, progress=False, baselines=False)
    assert calls == [0, 1, 0, 1]


def test_report_written_whole_however_rarely(suite_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(S, "WRITE_EVERY_S", 1e9)  # after the first task, no write until the run stops
    out = tmp_path / "out"

    def kill_after_knn(msg: str) -> None:
        if msg.startswith("pixels") and "kNN" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suite(suite_file, ["pixels"], out, figures=False, progress=False, baselines=False, say=kill_after_knn)
    assert set(pd.read_csv(out / "results_per_seed.csv")["task"]) == {"cls", "patch-mean", "kNN"}
    run_suite(suite_file, ["pixels"], out, figures=False, progress=False, baselines=False, say=lambda _: None)
    assert set(pd.read_csv(out / "results_per_seed.csv")["task"]) == {"cls", "patch-mean", "kNN", "reconstruction"}
    assert "reconstruction" in (out / "results.md").read_text()


def test_cellprofiler_crops_started_ahead_skip_what_is_done(suite_file, tmp_path, monkeypatch) -> None:
    suite = S.load_suite(suite_file)
    datasets = S.load_suite_datasets(suite, say=lambda _: None)
    cp = load_model_spec("cellprofiler")
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(type(cp.model), "measure_ahead",
                        lambda self, images, names: started.append((len(images), images[0].shape[0])) or len(images))
    n = eval_ahead.measure_suite_ahead([cp, load_model_spec("raw_pixels")], suite.tasks, datasets, tmp_path / "o",
                                       suite.seeds)
    # three probes read every channel of blobs; the reconstruction reads DNA with protein as a zero plane
    assert started == [(40, 2)] * 4 and n == 160
    started.clear()
    run_suite(suite_file, ["cellprofiler"], tmp_path / "o", figures=False, progress=False, baselines=False)
    started.clear()  # the run itself started them too
    assert eval_ahead.measure_suite_ahead([cp], suite.tasks, datasets, tmp_path / "o", suite.seeds) == 0
    assert started == []  # every task finished: nothing to measure
