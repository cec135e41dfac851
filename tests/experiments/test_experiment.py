"""`chadavit experiment run/report/list`: runs, skipping finished runs, --index, provenance, reproducible tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from chadavit.cli.main import main
from chadavit.experiments import ExperimentError, load_experiment
from chadavit.experiments.runner import METRICS, pretrain_config

from .conftest import tiny_experiment


def test_load_expands_sweeps_and_resolves_run_configs(tiny_exp):
    exp = load_experiment(tiny_exp)
    assert [r.name for r in exp.runs] == ["chada", "one", "fixed3", "scale_d32"]
    assert [r.index for r in exp.runs] == [0, 1, 2, 3]
    cfg = pretrain_config(exp, exp.get("fixed3"))
    assert cfg.model.name == "fixed_channel_vit_tiny"
    assert cfg.model.overrides["in_chans"] == 3 and cfg.model.overrides["embed_dim"] == 16  # merged, not replaced
    assert cfg.data.filter.n_channels == [3]
    assert cfg.train.out_dir == str(exp.out / "runs" / "fixed3" / "pretrain")
    one = pretrain_config(exp, exp.get("one"))
    assert one.data.split_channels and one.model.name == "one_channel_vit_tiny"
    assert pretrain_config(exp, exp.get("scale_d32")).model.overrides["embed_dim"] == 32


@pytest.mark.parametrize("change,message", [
    ({"runs": [{"name": "a", "model": "chada_vit_nano", "modle_overrides": {}}]}, "unknown config key 'modle_overrides'"),
    ({"runs": [{"name": "a", "model": "chada_vit_nano"}, {"name": "a", "model": "chada_vit_nano"}]}, "duplicate"),
    ({"report": {"table3": {"runs": ["nope"]}}}, "unknown run 'nope'"),
    ({"report": {"figure9": {}}}, "report: unknown config key 'figure9'"),
    ({"evaluation": {}}, "evaluation.suite is required"),
    ({"runs": [{"name": "a", "model": "chada_vit_nano", "seed": "x"}]}, "run 'a': seed must be an integer"),
    ({"runs": [{"name": "a", "model": "chada_vit_nano", "sweep": [{"name": "b"}]}]}, "may not set 'name'"),
    ({"pretrain": {"config": "demo", "overides": {}}}, "unknown config key 'pretrain.overides'"),
])
def test_bad_experiment_files_are_refused_with_the_key(tmp_path, change, message):
    path = tiny_experiment(tmp_path)
    data = yaml.safe_load(path.read_text())
    data.update(change)
    if "runs" in change:
        data.pop("report")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ExperimentError, match=message):
        load_experiment(path)


def test_run_values_are_read_with_the_config_loaders_types(tmp_path):
    path = tiny_experiment(tmp_path, runs=[{"name": "a", "model": "chada_vit_nano", "untrained": "no", "seed": 2.0,
                                            "tags": "x,y", "data": None}])
    data = yaml.safe_load(path.read_text())
    data.pop("report")
    path.write_text(yaml.safe_dump(data))
    run = load_experiment(path).get("a")
    assert run.untrained is False and run.seed == 2 and run.tags == ["x", "y"] and run.data == {}


def test_bad_override_fails_before_any_run(tmp_path, capsys):
    path = tiny_experiment(tmp_path, runs=[{"name": "a", "model": "chada_vit_nano"},
                                          {"name": "b", "model": "chada_vit_nano", "pretrain": {"optim.lrr": 1}}])
    data = yaml.safe_load(path.read_text())
    data.pop("report")
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", "run", str(path)]) == 2
    assert "optim.lrr" in capsys.readouterr().err
    assert not (tmp_path / "results" / "runs" / "a").exists()
    assert main(["experiment", "run", str(path), "--index", "5"]) == 2


def test_run_skip_index_report_and_reproducibility(tiny_exp, tmp_path, capsys):
    results = tmp_path / "results"
    # one run alone (an array-job task)
    assert main(["experiment", "run", str(tiny_exp), "--index", "2", "--no-progress"]) == 0
    assert (results / "runs" / "fixed3" / METRICS).is_file()
    assert not (results / "runs" / "chada").exists()
    # the rest; the finished run is skipped
    capsys.readouterr()
    assert main(["experiment", "run", str(tiny_exp), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fixed3: finished earlier" in out and "3 run(s) executed, 1 already finished" in out
    mtimes = {p: p.stat().st_mtime_ns for p in results.glob("runs/*/metrics.json")}
    assert len(mtimes) == 4
    assert main(["experiment", "run", str(tiny_exp), "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in results.glob("runs/*/metrics.json")} == mtimes
    assert "0 run(s) executed, 4 already finished" in capsys.readouterr().out

    # provenance and metrics of a run
    rdir = results / "runs" / "one"
    m = json.loads((rdir / METRICS).read_text())
    prov = m["provenance"]
    assert prov["chadavit_version"] and prov["git"]["commit"]
    assert {"torch", "numpy", "python"} <= set(prov["libraries"])
    assert prov["hardware"]["cpu_count"] >= 1 and "gpu" in prov["hardware"]
    assert m["seeds"] == {"pretrain": 0, "synthetic_data": 0, "evaluation": [0, 1]}
    assert m["wall_s"]["total"] > 0 and m["parameters"] > 0 and m["embed_dim"] == 16
    assert {(r["task"], r["metric"]) for r in m["eval"]} >= {("stage linear", "top1"), ("stage kNN", "top1")}
    cfg = yaml.safe_load((rdir / "config.yaml").read_text())
    assert cfg["data"]["split_channels"] is True and cfg["model"]["name"] == "one_channel_vit_tiny"
    assert json.loads((rdir / "provenance.json").read_text())["status"] == "finished"
    assert not list(results.rglob(".*.tmp-*"))

    # the report: three layouts as Markdown, CSV and PNG
    rep = tmp_path / "report"
    assert main(["experiment", "report", str(tiny_exp), "--out", str(rep)]) == 0
    for stem in ("table3", "cls_vs_all_tokens", "scaling"):
        assert (rep / f"{stem}.md").is_file() and (rep / f"{stem}.csv").is_file(), stem
    for png in ("cls_vs_all_tokens.png", "scaling.png"):
        assert (rep / png).read_bytes()[:4] == b"\x89PNG"
    t3 = pd.read_csv(rep / "table3.csv")
    assert list(t3["run"]) == ["chada", "one", "fixed3"]
    assert t3["stage linear mean"].between(0, 100).all()
    sc = pd.read_csv(rep / "scaling.csv")
    assert sorted(sc["embed_dim"]) == [16, 32] and sc["parameters"].is_monotonic_increasing
    text = (rep / "report.md").read_text()
    assert "| ChAda-ViT |" in text and "Not finished" not in text

    # same file, fresh results folder: the same table
    again = tmp_path / "again"
    assert main(["experiment", "run", str(tiny_exp), "--out", str(again), "--index", "0", "--no-progress"]) == 0
    assert main(["experiment", "run", str(tiny_exp), "--out", str(again), "--index", "1", "--no-progress"]) == 0
    assert main(["experiment", "run", str(tiny_exp), "--out", str(again), "--index", "2", "--no-progress"]) == 0
    rep2 = tmp_path / "report2"
    assert main(["experiment", "report", str(tiny_exp), "--results", str(again), "--out", str(rep2)]) == 0
    assert (rep2 / "table3.csv").read_text() == (rep / "table3.csv").read_text()
    assert "Not finished yet (1):** scale_d32" in (rep2 / "report.md").read_text()


def test_bundled_small_study_loads_and_lists():
    exp = load_experiment("small_study")
    assert {r.model for r in exp.runs} >= {"chada_vit_nano", "one_channel_vit_tiny", "fixed_channel_vit_tiny",
                                           "inter_channel_vit_moyen"}
    for run in exp.runs:
        pretrain_config(exp, run)  # every run resolves to a valid pretraining config
    assert Path(exp.resolve_file(exp.evaluation["suite"])).is_file()


def test_untrained_reference_run_evaluates_the_seeded_initialisation(tmp_path):
    path = tiny_experiment(tmp_path, runs=[{"name": "rand", "model": "chada_vit_nano", "untrained": True, "seed": 3}])
    data = yaml.safe_load(path.read_text())
    data.pop("report")
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", "run", str(path), "--no-progress"]) == 0
    rdir = tmp_path / "results" / "runs" / "rand"
    m = json.loads((rdir / METRICS).read_text())
    assert m["pretrain"]["steps"] == 0 and m["seeds"]["pretrain"] == 3
    assert not (rdir / "pretrain" / "checkpoint.pt").exists()
    import torch

    from chadavit.models import load_pretrained
    from chadavit.pretrain.trainer import build_backbone

    torch.manual_seed(3)
    ref = build_backbone(pretrain_config(load_experiment(path), load_experiment(path).get("rand")))
    got = load_pretrained(rdir / "pretrain" / "backbone")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), got.state_dict().values()))


def test_git_commit_is_unknown_outside_a_checkout(tmp_path):
    from chadavit.experiments.provenance import git_commit

    assert git_commit(tmp_path) == {"commit": "unknown", "dirty": None}
    assert git_commit(tmp_path / "venv" / "lib" / "site-packages" / "chadavit")["commit"] == "unknown"
