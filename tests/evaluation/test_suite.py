"""Suites, the table writer and a small end-to-end `chadavit eval` run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chadavit.cli.main import main
from chadavit.evaluation.data import EvalData
from chadavit.evaluation.features import extract_features, load_model_spec
from chadavit.evaluation.suite import SuiteError, list_suites, load_suite, run_suite, summarise
from chadavit.evaluation.tables import fmt, to_markdown, wide_table, write_tables

TINY_SUITE = """
name: tiny
seeds: [0, 1]
datasets:
  blobs: {adapter: npz, path: "${data_root}/blobs.npz"}
  cells: {adapter: synthetic, n: 36, channels: [DNA, protein], size: 32, seed: 3, n_compounds: 4, n_moa: 2}
  gone: {adapter: bloodmnist, path: "${data_root}/no_bloodmnist", optional: true}
tasks:
  - {name: blobs linear, dataset: blobs, protocol: linear, label: label, features: cls, epochs: 30}
  - {name: blobs all-token, dataset: blobs, protocol: linear, label: label, features: all_tokens, epochs: 30}
  - {name: blobs kNN, dataset: blobs, protocol: knn, label: label, k: 5}
  - {name: blobs missing, dataset: blobs, protocol: missing_channels, label: label, epochs: 30}
  - {name: cells regression, dataset: cells, protocol: regression, label: translocation, solver: ridge}
  - {name: cells MoA, dataset: cells, protocol: moa, treatment: [compound, batch]}
  - {name: cells reconstruction, dataset: cells, protocol: reconstruction, target_channel: protein, epochs: 2,
     width: 0.125, target_size: 16}
  - {name: blood, dataset: gone, protocol: linear, label: label}
figures:
  attention: {dataset: blobs, n_images: 2}
  embedding: {datasets: [blobs, cells], method: pca}
"""


def write_blobs(root: Path, n: int = 40) -> Path:
    """Two classes that differ in the brightness of the second channel (easy for any encoder)."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    imgs = rng.integers(0, 200, size=(n, 2, 32, 32)).astype(np.uint16)
    imgs[labels == 1, 1, 8:24, 8:24] += 3000
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "blobs.npz", images=imgs, labels=labels, channel_names=np.array(["DNA", "protein"]))
    return root / "blobs.npz"


def blobs_suite(tmp_path: Path, suite: str, name: str = "s.yaml") -> Path:
    """``suite`` (YAML with ``${data_root}``) written beside a blobs dataset under ``tmp_path / "data"``."""
    write_blobs(tmp_path / "data")
    p = tmp_path / name
    p.write_text(suite.replace("${data_root}", str(tmp_path / "data")))
    return p


@pytest.fixture()
def tiny_suite(tmp_path: Path) -> Path:
    write_blobs(tmp_path / "data")
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY_SUITE)
    return p


def test_presets_load():
    assert "synthetic" in list_suites() and "paper" in list_suites()
    s = load_suite("synthetic")
    assert len(s.seeds) == 5 and {t.protocol for t in s.tasks} >= {"linear", "knn", "regression", "moa",
                                                                     "reconstruction", "missing_channels"}
    paper = load_suite("paper", {"data_root": "/data"})
    assert paper.datasets["bloodmnist"]["path"].startswith("/data")


def test_bad_suite_errors(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {a: {adapter: npz, path: x}}\ntasks:\n  - {name: t, dataset: a, protocol: magic}\n")
    with pytest.raises(SuiteError, match="unknown protocol"):
        load_suite(bad)
    with pytest.raises(SuiteError, match="neither a file nor a preset"):
        load_suite("no_such_suite")


def test_table_writer(tmp_path: Path):
    results = pd.DataFrame([{"model": m, "task": "t1", "metric": "top1", "value": v, "seed": s}
                            for m, vals in (("a", [50.0, 60.0]), ("b", [70.0, 70.0])) for s, v in enumerate(vals)]
                           + [{"model": "a", "task": "t2", "metric": "r2", "value": 0.5, "seed": 0},
                              {"model": "a", "task": "t2", "metric": "mse", "value": 0.1, "seed": 0}])
    summary = summarise(results)
    row = summary[(summary.model == "a") & (summary.task == "t1")].iloc[0]
    assert row["mean"] == 55.0 and row["std"] == pytest.approx(np.std([50, 60], ddof=1)) and row["n_seeds"] == 2
    table = wide_table(summary, {"t1": ["top1"], "t2": ["r2"]})
    assert list(table.index) == ["a", "b"] and list(table.columns) == ["t1 (top-1 %)", "t2 (R²)"]
    assert table.loc["a", "t1 (top-1 %)"] == "55.0 ± 7.1" and table.loc["b", "t1 (top-1 %)"] == "70.0 ± 0.0"
    assert pd.isna(table.loc["b", "t2 (R²)"])
    md = to_markdown(table)
    assert md.splitlines()[0] == "| model | t1 (top-1 %) | t2 (R²) |" and "| b | 70.0 ± 0.0 |  |" in md
    write_tables(results, summary, {"t1": ["top1"], "t2": ["r2"]}, {"suite": "x", "seeds": [0, 1]}, tmp_path)
    assert (tmp_path / "results.md").read_text().count("55.0 ± 7.1") >= 1
    assert pd.read_csv(tmp_path / "table.csv", index_col=0).shape == (2, 2)
    assert fmt(0.12345, 0.01, "mse") == "0.1235 ± 0.0100"


def test_feature_cache_and_channel_subsets(tmp_path: Path):
    write_blobs(tmp_path)
    from chadavit.evaluation.adapters import load_dataset

    d = load_dataset("npz", path=tmp_path / "blobs.npz")
    lm = load_model_spec("pixels")
    a = extract_features(lm, d, ("cls", "all_tokens"), cache_dir=tmp_path / "cache", progress=False)
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 2 and a["cls"].shape == (40, 32) and a["all_tokens"].shape == (40, 2 * 16 * 32)
    np.save(files[1 if "cls" in files[1].name else 0], np.zeros_like(a["cls"]))  # cached values are reused
    assert np.all(extract_features(lm, d, ("cls",), cache_dir=tmp_path / "cache", progress=False)["cls"] == 0)
    one = extract_features(lm, d, ("cls",), channels=[1], progress=False)["cls"]
    assert not np.allclose(one, a["cls"])
    # mixed image sizes keep dataset order
    mixed = EvalData("mixed", [d.images[0], d.images[1][:, :16, :16], d.images[2]], d.channel_names[:3], d.labels[:3])
    m = extract_features(lm, mixed, ("cls",), progress=False)["cls"]
    assert np.allclose(m[[0, 2]], a["cls"][[0, 2]], atol=1e-6)


def test_run_suite_end_to_end(tiny_suite: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("CHADAVIT_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    summary = run_suite(tiny_suite, ["pixels"], out, progress=False)
    said = capsys.readouterr().out
    assert "SKIPPED dataset gone" in said and "SKIPPED task blood" in said
    assert {"raw_pixels", "CellProfiler (cp_measure)"} <= set(summary.model) and "pixels" in summary.attrs["baselines"]
    top = summary[(summary.task == "blobs linear") & (summary.metric == "top1") & (summary.model == "pixels")]["mean"]
    top = top.item()
    assert top > 90  # the classes are trivially separable
    assert {"nsc", "nscb", "nsc_chance", "n_treatments_nscb"} <= set(summary.metric[summary.task == "cells MoA"])
    assert set(summary.metric[summary.task == "blobs missing"]) == {"top1@1/2", "top1@2/2"}
    assert set(summary.metric[summary.task == "cells reconstruction"]) == {"r2", "mse", "mae"}
    per_seed = pd.read_csv(out / "results_per_seed.csv")
    assert set(per_seed.seed) == {0, 1}
    for name in ("attention_pixels.png", "embedding_pixels.png", "cls_vs_all_tokens.png",
                 "reconstruction_cells_reconstruction.png", "missing_channels_blobs_missing.png"):
        assert (out / "figures" / name).is_file(), name
    md = (out / "results.md").read_text()
    assert "| pixels |" in md and "Skipped (dataset unavailable): blood" in md and "figures/attention_pixels.png" in md
    # same seeds reproduce, other seeds change the numbers
    again = run_suite(tiny_suite, ["pixels"], tmp_path / "out2", figures=False, progress=False, baselines=False)
    mine = summary[summary.model == "pixels"].reset_index(drop=True)
    assert np.allclose(again["mean"], mine["mean"])
    other = run_suite(tiny_suite, ["pixels"], tmp_path / "out3", seeds=[5, 6], figures=False, progress=False,
                      baselines=False)
    assert not np.allclose(other["mean"], mine["mean"])


def test_cli_eval_with_a_transformer(tiny_suite: Path, tmp_path: Path, capsys):
    out = tmp_path / "cli"
    rc = main(["eval", "--suite", str(tiny_suite), "--model", "random:chada_vit_nano", "--model", "pixels",
               "--out", str(out), "--seeds", "0", "--no-progress", "--no-figures",
               "--set", f"data_root={tmp_path / 'data'}"])
    assert rc == 0
    table = pd.read_csv(out / "table.csv", index_col=0)
    # the models asked for, then the baselines
    assert list(table.index) == ["random:chada_vit_nano", "pixels", "raw_pixels", "CellProfiler (cp_measure)"]
    assert "blobs linear (top-1 %)" in table.columns
    said = capsys.readouterr().out
    assert "* random:chada_vit_nano" in said and "* CellProfiler (cp_measure)" in said  # untrained: marked as baselines
    assert max(len(line) for line in said.split("full table:")[-2].splitlines()[-12:]) <= 100


def test_cli_missing_dataset_is_a_clear_error(tmp_path: Path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"datasets: {{b: {{adapter: bloodmnist, path: {tmp_path / 'nope'}}}}}\n"
                     "tasks:\n  - {name: t, dataset: b, protocol: linear, label: label}\n")
    assert main(["eval", "--suite", str(suite), "--model", "pixels", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bloodmnist.npz" in err and "Expected layout" in err
    assert main(["eval", "--suite", "paper", "--model", "pixels", "--out", str(tmp_path / "p"), "--no-figures",
                 "--skip-missing", "--set", f"data_root={tmp_path / 'none'}"]) == 0
    out = capsys.readouterr().out
    assert "SKIPPED dataset bloodmnist" in out and "SKIPPED task BBBC021 MoA" in out


def test_model_specs():
    with pytest.raises(ValueError, match="unknown preset .no_such_model."):
        load_model_spec("random:no_such_model")
    lm = load_model_spec("floor=pixels")
    assert lm.label == "floor" and lm.key.startswith("floor-")
    small = load_model_spec("random:chada_vit_nano,depth=1")
    assert small.label == "random:chada_vit_nano,depth=1" and small.model.config.depth == 1
    assert not any(p.requires_grad for p in small.model.parameters()) and not small.model.training


def test_zero_fill_keeps_channel_slots():
    from chadavit.evaluation.features import select_channels

    imgs = [np.arange(3 * 4 * 4, dtype=np.uint16).reshape(3, 4, 4) + 1]
    d = EvalData("z", imgs, [("a", "b", "c")], pd.DataFrame({"label": [0]}))
    dropped, names = select_channels(d, [0, 2])
    assert dropped[0].shape == (2, 4, 4) and names == [("a", "c")]
    filled, names = select_channels(d, [0, 2], zero_fill=True)
    assert filled[0].shape == (3, 4, 4) and names == [("a", "b", "c")]
    assert not filled[0][1].any() and np.array_equal(filled[0][2], imgs[0][2])


def test_official_spec_reproduces_reference_cls(shared_dir: Path):
    fx = shared_dir / "fixtures" / "official_chadavit"
    ref = np.load(fx / "reference_io.npz")
    counts = ref["b0_num_channels"].tolist()
    planes = ref["b0_pixels_uint8"]
    offs = np.cumsum([0] + counts)
    images = [planes[offs[i] : offs[i + 1]] for i in range(len(counts))]
    d = EvalData("ref", images, [tuple(f"c{j}" for j in range(c)) for c in counts], pd.DataFrame({"i": counts}))
    for spec, key in ((f"official:{fx / 'official_training.ckpt'}", "b0_student_cls"),
                      (f"official:{fx / 'official_training.ckpt'}:teacher", "b0_teacher_cls")):
        lm = load_model_spec(spec)
        cls = extract_features(lm, d, ("cls",), progress=False)["cls"]
        assert np.abs(cls - ref[key]).max() < 1e-3, spec
    assert lm.label.endswith(":teacher")


def test_directory_spec_matches_the_saved_model(tmp_path: Path):
    from chadavit.models import save_pretrained

    lm = load_model_spec("random:chada_vit_nano,depth=1")
    save_pretrained(lm.model, tmp_path / "my_model")
    loaded = load_model_spec(str(tmp_path / "my_model"))
    assert loaded.label == "my_model" and loaded.key.split("-")[-1] == lm.key.split("-")[-1]  # same weight hash
    write_blobs(tmp_path)
    from chadavit.evaluation.adapters import load_dataset

    d = load_dataset("npz", path=tmp_path / "blobs.npz", max_images=6)
    a = extract_features(lm, d, ("cls", "patch_mean"), progress=False)
    b = extract_features(loaded, d, ("cls", "patch_mean"), progress=False)
    assert a["cls"].shape == (6, 64) and np.allclose(a["cls"], b["cls"], atol=1e-5)


def test_per_channel_measurements_skip_the_missing_channel_curve(tmp_path: Path, monkeypatch):
    """Hand-crafted measurements of a channel subset are another feature set: no curve, and no 2^C - 1 passes."""
    write_blobs(tmp_path / "data")
    suite = tmp_path / "missing.yaml"
    suite.write_text(TINY_SUITE.split("tasks:")[0].replace("name: tiny", "name: missing") + "tasks:\n"
                     "  - {name: blobs missing, dataset: blobs, protocol: missing_channels, label: label, epochs: 5}\n"
                     "  - {name: blobs kNN, dataset: blobs, protocol: knn, label: label, k: 5}\n")
    monkeypatch.setenv("CHADAVIT_DATA", str(tmp_path / "data"))
    lines: list[str] = []
    summary = run_suite(suite, ["pixels", "handcrafted"], tmp_path / "out", figures=False, progress=False,
                        baselines=False, say=lines.append)
    by_task = summary.groupby("task")["model"].unique()
    assert "handcrafted" not in set(by_task["blobs missing"]) and "handcrafted" in set(by_task["blobs kNN"])
    assert any("blobs missing" in s and "not run: per-channel measurements" in s for s in lines)


def test_knn_standardises_measurements_in_physical_units_only(tmp_path: Path, monkeypatch):
    """CellProfiler-style measurements (areas in pixels beside intensities) are standardised before the cosine
    kNN; an embedding or the per-crop standardised pixels are compared as they are."""
    import chadavit.evaluation.protocols as P
    from chadavit.models.references import CellProfilerEncoder, HandcraftedEncoder, RawPixelEncoder

    assert CellProfilerEncoder.physical_units and HandcraftedEncoder.physical_units
    assert not RawPixelEncoder.physical_units
    suite = blobs_suite(tmp_path, TINY_SUITE.split("tasks:")[0].replace("name: tiny", "name: knn") + "tasks:\n"
                        "  - {name: blobs kNN, dataset: blobs, protocol: knn, label: label, k: 5}\n")
    monkeypatch.setenv("CHADAVIT_DATA", str(tmp_path / "data"))
    seen: list[tuple[int, bool]] = []
    real_knn = P.knn_classify

    def spy(*args, standardise=False, **kwargs):
        seen.append((args[0].shape[1], standardise))
        return real_knn(*args, standardise=standardise, **kwargs)

    monkeypatch.setattr(P, "knn_classify", spy)
    run_suite(suite, ["pixels", "handcrafted"], tmp_path / "out", figures=False, progress=False, baselines=False)
    flags = {d: f for d, f in seen}
    hand = 2 * 37  # the old statistics: 37 per channel
    assert flags.pop(hand) is True and flags and not any(flags.values())
