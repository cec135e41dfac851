"""benchmarks/recipe_table.py: who counts as a baseline, and the per-read-out judgement of a kinds run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rt():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("recipe_table", ROOT / "benchmarks" / "recipe_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_roles_keep_baselines_and_hybrids_out_of_trained(rt) -> None:
    assert rt.role("raw_pixels") == "pixels"
    assert rt.role("CellProfiler (cp_measure)") == "handcrafted"
    assert rt.role("handcrafted") == "handcrafted"
    assert rt.role("random init (plate)") == "random"
    assert rt.role("CellProfiler + plate") == "hybrid"
    assert rt.role("plate") == "trained"


def _kinds_csv(path: Path) -> Path:
    rows = []
    for task, (pix, cls_t, cls_r, pc_t, pc_r) in {
        "gH2AX foci / nucleus": (0.0, 0.5, 0.4, 0.6, 0.7),  # cls wins; per_channel loses to its random init
        "translocation N/C ratio": (0.6, 0.3, 0.2, 0.7, 0.5),  # only per_channel beats raw pixels
    }.items():
        rows += [
            {"task": task, "model": "raw_pixels", "cls": pix, "patch_mean": float("nan"), "per_channel": float("nan")},
            {"task": task, "model": "CellProfiler (cp_measure)", "cls": 0.9, "patch_mean": None, "per_channel": None},
            {"task": task, "model": "m", "cls": cls_t, "patch_mean": cls_t, "per_channel": pc_t},
            {"task": task, "model": "random init (m)", "cls": cls_r, "patch_mean": cls_r, "per_channel": pc_r},
            {"task": task, "model": "CellProfiler + m", "cls": 9.0, "patch_mean": 9.0, "per_channel": 9.0},
        ]
    path.mkdir()
    pd.DataFrame(rows).to_csv(path / "kinds.csv", index=False)
    return path / "kinds.csv"


def test_each_read_out_is_judged_against_the_same_read_out_of_its_random_init(rt, tmp_path: Path) -> None:
    per = rt.kind_medians(_kinds_csv(tmp_path / "k"))
    cls_cells, cls_wins = rt._column(per["cls"])
    pc_cells, pc_wins = rt._column(per["per_channel"])
    assert cls_wins == 1 and pc_wins == 1
    assert per["per_channel"].loc["gH2AX foci / nucleus", "random"] == 0.7
    assert per["per_channel"].loc["translocation N/C ratio", "pixels"] == 0.6  # raw pixels: the cls row
    assert cls_cells[0].endswith("+") and not pc_cells[0].endswith("+")


def test_suite_view_maps_patch_mean_tasks_to_their_cls_source(rt, tmp_path: Path) -> None:
    per = rt.kind_medians(_kinds_csv(tmp_path / "k"))
    view = rt.suite_view(per)
    assert view.loc["foci patch-mean", "trained"] == per["patch_mean"].loc["gH2AX foci / nucleus", "trained"]
    assert view.loc["translocation N/C ratio", "trained"] == 0.3
    assert "mitotic patch-mean" not in view.index  # no such task in this kinds run
