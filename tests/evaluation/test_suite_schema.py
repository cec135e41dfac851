"""Issue 22 item 14: a suite is checked before any work (misspelt keys, missing labels), and ``chadavit eval``
exits non-zero when a task failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from chadavit.evaluation.suite import SuiteError, load_suite, run_suite

from .test_suite import write_blobs

HEAD = """
name: checked
seeds: [0]
datasets:
  blobs: {adapter: npz, path: "DATA/blobs.npz"}
tasks:
"""


def _suite(tmp_path: Path, tasks: str, head: str = HEAD) -> Path:
    write_blobs(tmp_path / "data")
    p = tmp_path / "s.yaml"
    p.write_text(head.replace("DATA", str(tmp_path / "data")) + tasks)
    return p


@pytest.mark.parametrize("task, expected", [
    ("{name: t, dataset: blobs, protocol: linear, label: label, featurs: patch_mean}",
     "task 't' (linear): unknown key(s) 'featurs' (did you mean 'features'?)"),
    ("{name: t, dataset: blobs, protocol: knn, label: label, kk: 5}", "unknown key(s) 'kk' (did you mean 'k'?)"),
    ("{name: t, dataset: blobs, protocol: knn, label: label, solver: ridge}", "unknown key(s) 'solver'"),
    ("{name: t, dataset: blobs, protocol: linear, label: label, solver: ridge}",
     "task 't' (linear): solver 'ridge' is not one of sgd, logistic"),
    ("{name: t, dataset: blobs, protocol: linear, label: label, class_weight: balanced}",
     "class_weight: balanced is the one choice, with solver: logistic"),
    ("{name: t, dataset: blobs, protocol: linear}", "task 't' (linear) needs label:"),
    ("{name: t, dataset: blobs, protocol: linear, label: label, features: pooled}", "features 'pooled' is not one"),
])
def test_misspelt_or_missing_task_keys_are_refused(task: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as info:
        load_suite(_suite(tmp_path, f"  - {task}\n"))
    assert expected in str(info.value) and "s.yaml" in str(info.value)


def test_misspelt_top_level_and_dataset_keys_are_refused(tmp_path: Path) -> None:
    head = HEAD.replace("seeds:", "seed:").replace('path: "DATA/blobs.npz"', 'path: "DATA/blobs.npz", sise: 32')
    with pytest.raises(SuiteError) as info:
        load_suite(_suite(tmp_path, "  - {name: t, dataset: blobs, protocol: knn, label: label}\n", head))
    msg = str(info.value)
    assert "top level: unknown key(s) 'seed' (did you mean 'seeds'?)" in msg
    assert "dataset 'blobs' (npz): unknown key(s) 'sise' (did you mean 'size'?)" in msg


def test_every_preset_suite_passes_the_check() -> None:
    from chadavit.evaluation.suite import list_suites

    for name in list_suites():
        assert load_suite(name, {"data_root": "/data"}).tasks


def test_missing_label_is_found_before_any_feature_is_computed(tmp_path: Path, monkeypatch) -> None:
    import chadavit.evaluation.suite as suite_mod
    import chadavit.evaluation.tasks as tasks_mod

    monkeypatch.setattr(suite_mod, "load_model_spec", lambda *a, **k: pytest.fail("model loaded before the check"))
    monkeypatch.setattr(tasks_mod, "extract_features", lambda *a, **k: pytest.fail("features before the check"))
    p = _suite(tmp_path, "  - {name: ok, dataset: blobs, protocol: knn, label: label}\n"
                         "  - {name: bad, dataset: blobs, protocol: linear, label: localisation}\n")
    with pytest.raises(SuiteError, match="task 'bad': dataset blobs has no label column 'localisation'"):
        run_suite(p, ["random:chada_vit_nano"], tmp_path / "out", figures=False, progress=False, baselines=False)


def test_eval_exits_1_when_a_task_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from chadavit.cli.main import main

    p = _suite(tmp_path, "  - {name: ok, dataset: blobs, protocol: knn, label: label, k: 5}\n"
                         "  - {name: broken, dataset: blobs, protocol: reconstruction, target_channel: nope}\n")
    argv = ["eval", "--suite", str(p), "--model", "pixels", "--out", str(tmp_path / "out"), "--no-figures",
            "--no-baselines", "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "1 task(s) failed" in err and "pixels / broken" in err
    assert (tmp_path / "out" / "results.md").is_file()  # the task that ran is kept
    p.write_text(p.read_text().split("  - {name: broken")[0])
    assert main(argv) == 0
