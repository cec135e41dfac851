"""The `plate` preset and the demo's verdict against the best baseline (issue 10)."""

from __future__ import annotations

import pandas as pd

from chadavit.experiments.demo import PRETRAINED, demo_verdict
from chadavit.pretrain.config import list_presets, load_config


def test_plate_preset_uses_cell_views_dataset_statistics_and_the_data_vocabulary():
    assert "plate" in list_presets()
    cfg = load_config("plate", ["data.paths=[/data/plate1]"])
    assert cfg.data.cells.size > 0 and cfg.data.cells.diameters > 0
    assert cfg.data.normalization == "dataset"
    assert cfg.model.overrides["channel_vocab"] == "auto"
    assert cfg.data.synthetic.channel_sets == [] and cfg.data.paths == ["/data/plate1"]


def _table(rows, primary):
    t = pd.DataFrame(rows, columns=["model", "task", "metric", "mean", "std", "n_seeds"])
    t.attrs["primary"] = primary
    t.attrs["baselines"] = ["raw_pixels", "CellProfiler (cp_measure)", "random init"]
    return t


def test_demo_verdict_compares_with_the_best_baseline_and_says_when_it_loses():
    syn = _table([(PRETRAINED, "localisation linear", "top1", 60.0, 1, 5),
                  ("random init", "localisation linear", "top1", 45.0, 1, 5),
                  ("raw_pixels", "localisation linear", "top1", 74.0, 1, 5),
                  ("CellProfiler (cp_measure)", "localisation linear", "top1", 50.0, 1, 5)],
                 {"localisation linear": ["top1"]})
    real = _table([(PRETRAINED, "foci", "r2", 0.5, 0, 5), ("raw_pixels", "foci", "r2", 0.1, 0, 5),
                   ("CellProfiler (cp_measure)", "foci", "r2", 0.3, 0, 5),
                   (PRETRAINED, "mitotic", "macro_f1", 70.0, 0, 5), ("raw_pixels", "mitotic", "macro_f1", 60.0, 0, 5),
                   ("CellProfiler (cp_measure)", "mitotic", "macro_f1", 65.0, 0, 5)],
                  {"foci": ["r2"], "mitotic": ["macro_f1"]})
    syn_line, syn_mean, real_line, real_mean = demo_verdict({"synthetic": syn, "real": real})
    assert "LOSES TO" in syn_line and "raw_pixels 74.0" in syn_line  # beats random init, yet loses to pixels
    # the synthetic suite mean is said too, not only the one task the verdict judges
    assert syn_mean == ("synthetic suite mean (% as fractions): pretrained 0.600 LOSES TO raw pixels 0.740, "
                        "BEATS random init 0.450, BEATS CellProfiler (cp_measure) 0.500")
    assert "BEATS" in real_line and "2 of 2" in real_line
    # suite means: pretrained (0.5 + 0.70) / 2 = 0.600, raw pixels 0.350, CellProfiler 0.475
    assert real_mean == ("real suite mean (% as fractions): pretrained 0.600 BEATS raw pixels 0.350, "
                         "BEATS CellProfiler (cp_measure) 0.475")
