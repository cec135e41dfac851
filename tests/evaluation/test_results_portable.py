"""Issue 22 item 21: results.md held an absolute path of the machine it ran on, and times without the machine
or its load."""

from __future__ import annotations

from pathlib import Path

import pytest

from chadavit.evaluation.suite import run_suite
from chadavit.evaluation.tables import portable

from .test_suite import write_blobs


def test_results_md_has_no_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_blobs(tmp_path / "data")
    suite = tmp_path / "elsewhere" / "s.yaml"
    suite.parent.mkdir()
    suite.write_text(f"name: s\nseeds: [0]\ndatasets:\n  b: {{adapter: npz, path: {tmp_path / 'data' / 'blobs.npz'}}}\n"
                     "tasks:\n  - {name: t, dataset: b, protocol: knn, label: label, k: 3}\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run_suite(suite, ["pixels"], work / "out", figures=False, progress=False, baselines=False, say=lambda s: None)
    md = (work / "out" / "results.md").read_text()
    assert str(tmp_path) not in md and "Suite file: `s.yaml`" in md
    assert "CPU(s)" in md and "load average" in md  # where the time was measured, and how busy it was


@pytest.mark.parametrize("spec, shown", [
    ("official:/data/ckpt/ChAdaViT.ckpt:teacher,num_heads=2", "official:ChAdaViT.ckpt:teacher,num_heads=2"),
    ("random:chada_vit_nano,depth=2", "random:chada_vit_nano,depth=2"),
    ("hf:nicoboou/chadavit16-moyen@main", "hf:nicoboou/chadavit16-moyen@main"),
    ("runs/plate", "runs/plate"),
    ("/somewhere/else/model_dir", "model_dir"),
])
def test_specs_are_shown_without_this_machines_folders(spec: str, shown: str) -> None:
    assert portable(spec) == shown


def test_package_files_are_shown_by_package_path() -> None:
    from chadavit.evaluation.suite import CONFIG_DIR

    assert portable(str(CONFIG_DIR / "eval_synthetic.yaml")) == "chadavit/configs/eval_synthetic.yaml"
