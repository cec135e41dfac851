"""Suite `real`: grouped splits, classical per-cell targets on images with a known answer, the bundled copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chadavit.evaluation.real import measure as M
from chadavit.evaluation.real.sources import BUILDERS, human_mitosis, vitra_translocation
from chadavit.evaluation.real.store import BUNDLED, get_cellset, load_cellset, load_real, save_cellsets
from chadavit.evaluation.splits import grouped_split_indices
from chadavit.evaluation.suite import load_suite


# ---------------------------------------------------------------------------------------------- grouped splits
@pytest.mark.parametrize("seed", range(6))
def test_grouped_split_never_puts_one_group_on_both_sides(seed: int):
    rng = np.random.default_rng(seed)
    groups = np.array([f"field{g}" for g in rng.integers(0, 9, size=200)])
    labels = (rng.random(200) < 0.15).astype(int)
    tr, te = grouped_split_indices(groups, seed, 0.3, labels)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 200
    assert not set(groups[tr]) & set(groups[te])
    assert 0.15 < len(te) / 200 < 0.6
    assert set(labels[tr]) == {0, 1} and set(labels[te]) == {0, 1}  # a rare class kept on both sides


def test_grouped_split_varies_with_seed_and_needs_two_groups():
    groups = np.repeat(np.arange(10), 5)
    splits = {tuple(grouped_split_indices(groups, s)[1]) for s in range(5)}
    assert len(splits) > 1
    with pytest.raises(ValueError, match="at least 2 groups"):
        grouped_split_indices(np.zeros(5), 0)


# ---------------------------------------------------------------------------------------------- targets, known answers
def _disk(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_foci_count_on_synthetic_spots():
    rng = np.random.default_rng(0)
    mask = _disk((80, 80), 40, 40, 30)
    img = 100 + rng.normal(0, 2, (80, 80))
    img[mask] += 50
    yy, xx = np.mgrid[:80, :80]
    spots = [(30, 30), (30, 50), (50, 30), (50, 50), (40, 40)]
    for y, x in spots:
        img += 200 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    found = M.find_foci(img, mask)
    assert M.count_foci(img, mask) == 5
    assert {(int(y), int(x)) for y, x in found} == set(spots)
    assert M.count_foci(img, np.zeros_like(mask)) == 0


def test_pearson_intensity_and_positive_calls():
    rng = np.random.default_rng(1)
    a = rng.random((20, 20))
    mask = np.ones((20, 20), bool)
    assert M.pearson_in_mask(a, 2 * a + 1, mask) == pytest.approx(1.0)
    assert M.pearson_in_mask(a, -a, mask) == pytest.approx(-1.0)
    plane = np.full((10, 10), 5.0)
    m = _disk((10, 10), 5, 5, 3)
    assert M.integrated_intensity(plane, m, background=1.0) == pytest.approx(4.0 * m.sum())
    calls = M.positive_by_otsu(np.array([1, 1.1, 0.9, 1.0, 9, 10]))
    assert calls.tolist() == [False, False, False, False, True, True]
    assert M.spatial_block(0, 0, 100, 100, 4) == 0 and M.spatial_block(99, 99, 100, 100, 4) == 15


def test_nuclear_cytoplasmic_ratio_on_a_field_with_known_answer():
    """Three cells: protein 4x brighter in the nucleus, even, and 2x brighter in the cytoplasm; the rings of
    two touching cells do not share pixels."""
    shape = (60, 140)
    labels = np.zeros(shape, np.int32)
    protein = np.full(shape, 1.0)
    for k, (cx, nuc, cyt) in enumerate([(20, 40.0, 10.0), (60, 10.0, 10.0), (78, 10.0, 20.0)], start=1):
        ring = _disk(shape, 30, cx, 12)
        protein[ring & (labels == 0)] = cyt
        nucleus = _disk(shape, 30, cx, 6)
        labels[nucleus] = k
        protein[nucleus] = nuc
    r = M.nuclear_cytoplasmic_ratio(protein, labels, ring=4)
    assert r[0] == pytest.approx(4.0) and r[1] == pytest.approx(1.0, abs=0.15) and r[2] == pytest.approx(0.5, abs=0.1)
    assert np.isnan(M.nuclear_cytoplasmic_ratio(np.zeros(shape), labels, ring=4)).all()  # dark cytoplasm: no ratio
    assert M.nuclear_cytoplasmic_ratio(protein, np.zeros(shape, np.int32)).shape == (0,)


def _fake_human(root: Path) -> tuple[list[tuple[int, int]], list[bool]]:
    """An ExampleHuman-like field: 12 nuclei, PH3 bright in 3 of them."""
    import tifffile

    d = root / "cellprofiler_examples" / "ExampleHuman"
    d.mkdir(parents=True)
    dna = np.full((160, 160), 10, np.uint8)
    ph3 = np.full((160, 160), 5, np.uint8)
    body = np.full((160, 160), 20, np.uint8)
    centres = [(25 + 37 * i, 25 + 37 * j) for i in range(3) for j in range(4)]
    mitotic = [k in (1, 6, 10) for k in range(len(centres))]
    for (y, x), mit in zip(centres, mitotic):
        dna[_disk(dna.shape, y, x, 7)] = 200
        body[_disk(dna.shape, y, x, 14)] = 90
        if mit:
            ph3[_disk(dna.shape, y, x, 7)] = 250
    for k, a in (("d0", dna), ("d1", ph3), ("d2", body)):
        tifffile.imwrite(d / f"AS_fake_D03f00{k}.tif", a)
    return centres, mitotic


def test_mitosis_targets_on_a_field_with_known_answer(tmp_path: Path):
    centres, mitotic = _fake_human(tmp_path)
    s = human_mitosis(tmp_path, size=32)
    assert s.channels == ("DNA", "CellBody")  # PH3, the measured channel, is not shown
    assert s.crops.shape == (12, 2, 32, 32) and s.crops.dtype == np.uint8
    assert int(s.targets["mitotic"].sum()) == 3
    assert np.allclose(s.targets["nucleus_area"], _disk((160, 160), 80, 80, 7).sum(), rtol=0.1)
    # the PH3 channel never leaks into the crops: mitotic and other crops have the same pixel statistics
    means = s.crops.reshape(12, -1).mean(1)
    assert np.ptp(means) < 1.0
    assert len(set(s.groups)) > 2
    save_cellsets([s], tmp_path / "c.npz")
    back = load_cellset(tmp_path / "c.npz", "human_mitosis")
    assert back is not None and np.array_equal(back.crops, s.crops) and back.channels == s.channels


# ---------------------------------------------------------------------------------------------- bundled copy
def test_bundled_copy_serves_every_task_without_shared(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CHADAVIT_CACHE", str(tmp_path / "cache"))
    assert BUNDLED.is_file() and BUNDLED.stat().st_size < 9e6  # 8.5 MB: 6 tasks, 1,617 crops of 64x64
    assert (BUNDLED.parent / "REAL_CELLS_LICENSES.txt").is_file()
    for task in BUILDERS:
        d = load_real(task, shared=str(tmp_path / "absent"))
        assert len(d) >= 100 and "group" in d.labels and d.labels["group"].nunique() >= 4, task
        assert all(im.shape[1:] == (64, 64) for im in d.images)
    # another size is not bundled: without the raw images it is a clear, skippable error
    from chadavit.evaluation.data import DatasetLayoutError

    with pytest.raises(DatasetLayoutError, match="not bundled and the raw images are absent"):
        get_cellset("dsb_nuclei", shared=tmp_path / "absent", size=48)


def test_suite_real_preset_maps_to_known_tasks():
    suite = load_suite("real")
    assert suite.seeds == [0, 1, 2, 3, 4]
    real = [d for d in suite.datasets.values() if d["adapter"] == "real"]
    assert {d["task"] for d in real} == set(BUILDERS)
    assert {t.protocol for t in suite.tasks} == {"regression", "linear"}
    assert {t.features for t in suite.tasks} == {"cls", "patch_mean"}


def test_rebuild_from_shared_matches_the_bundled_copy(shared_dir: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CHADAVIT_CACHE", str(tmp_path / "cache"))
    data = shared_dir / "data"
    if not (data / "cellprofiler_examples" / "ExampleHuman").is_dir():
        pytest.skip(f"ExampleHuman not found under {data}")
    built = human_mitosis(data, 64)
    bundled = load_cellset(BUNDLED, "human_mitosis")
    assert bundled is not None
    assert np.array_equal(built.crops, bundled.crops)
    assert np.array_equal(built.targets["mitotic"], bundled.targets["mitotic"])
    assert 0.01 < built.targets["mitotic"].mean() < 0.2  # mitotic cells are a small minority


def test_translocation_rebuild_matches_the_bundled_copy(shared_dir: Path):
    data = shared_dir / "data"
    if not (data / "cellprofiler_examples" / "ExampleVitraImages").is_dir():
        pytest.skip(f"ExampleVitraImages not found under {data}")
    built = vitra_translocation(data, 64)
    bundled = load_cellset(BUNDLED, "vitra_translocation")
    assert bundled is not None and bundled.channels == ("DNA", "protein")
    assert np.array_equal(built.crops, bundled.crops) and np.array_equal(built.groups, bundled.groups)
    np.testing.assert_allclose(built.targets["nc_ratio"], bundled.targets["nc_ratio"])
    r = built.targets["nc_ratio"]
    wells = np.array([g.split("/")[0] for g in built.groups])
    assert len(r) == 600 and len(set(built.groups)) >= 20 and set(wells) == {"vitra01-A-01", "vitra12-A-12"}
    # the two wells are the two ends of the dose series: protein mostly nuclear in one, not in the other
    medians = sorted(float(np.median(r[wells == w])) for w in set(wells))
    assert medians[0] < 1.1 < 1.5 < medians[1]


def test_real_suite_end_to_end_with_baselines_and_a_clear_skip(tmp_path: Path, monkeypatch, capsys):
    """A cut-down `real` suite on the bundled crops; a task whose data is nowhere is skipped visibly."""
    import pandas as pd

    from chadavit.evaluation.real import store
    from chadavit.evaluation.suite import run_suite

    monkeypatch.setenv("CHADAVIT_CACHE", str(tmp_path / "cache"))
    suite = tmp_path / "real_small.yaml"
    suite.write_text(f"""
name: real-small
seeds: [0]
datasets:
  human: {{adapter: real, task: human_mitosis, max_images: 150, shared: {tmp_path / 'absent'}}}
  dsb48: {{adapter: real, task: dsb_nuclei, size: 48, shared: {tmp_path / 'absent'}, optional: true}}
tasks:
  - {{name: mitotic, dataset: human, protocol: linear, label: mitotic, primary: [macro_f1], epochs: 10}}
  - {{name: area, dataset: human, protocol: regression, label: nucleus_area, solver: ridge}}
  - {{name: dsb area, dataset: dsb48, protocol: regression, label: nucleus_area, solver: ridge}}
""")
    summary = run_suite(suite, ["pixels"], tmp_path / "out", progress=False, figures=False)
    said = capsys.readouterr().out
    assert "SKIPPED dataset dsb48" in said and "raw images are absent" in said and "SKIPPED task dsb area" in said
    assert {"pixels", "raw_pixels", "CellProfiler (cp_measure)"} == set(summary.model)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Skipped (dataset unavailable): dsb area" in md and "±" not in md
    assert "## Against the best baseline" in md
    per_seed = pd.read_csv(tmp_path / "out" / "results_per_seed.csv")
    assert set(per_seed.task) == {"mitotic", "area"}
    # CellProfiler's shape features measure the nucleus: they must predict its area far above chance
    area = summary[(summary.task == "area") & (summary.metric == "r2")].set_index("model")["mean"]
    assert area["CellProfiler (cp_measure)"] > 0.3
    assert store.BUNDLED.is_file()
