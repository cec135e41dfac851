"""The hybrid rows read the CellProfiler reference's cached features: a second run measures no cell again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chadavit.evaluation.cellprofiler import hybrid_models
from chadavit.evaluation.data import EvalData
from chadavit.evaluation.features import extract_features, load_model_spec
from chadavit.models.references import CellProfilerEncoder, hybrid_features


def _data() -> EvalData:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32]
    crops = [(np.where((yy - 16) ** 2 + (xx - 16) ** 2 <= r * r, 3000, 200)[None]
              + rng.integers(0, 50, (1, 32, 32))).astype(np.uint16) for r in (4, 6, 8, 10, 5)]
    return EvalData("cells", crops, [("DNA",)] * 5, pd.DataFrame(index=range(5)))


def test_a_second_run_reads_the_cellprofiler_cache(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("cp_measure", reason="cp_measure not installed")
    from chadavit.models import build_model, get_config, save_pretrained

    save_pretrained(build_model(get_config("chada_vit_nano", depth=1, img_size=32)), tmp_path / "trained")
    data, cache = _data(), tmp_path / "cache"
    first = load_model_spec("cellprofiler")
    cp = extract_features(first, data, ("cls",), cache_dir=cache, progress=False)["cls"]  # the CellProfiler row

    def no_measuring(*_a, **_k):
        raise AssertionError("cells measured again")

    monkeypatch.setattr(CellProfilerEncoder, "vectors", no_measuring)
    again = load_model_spec("cellprofiler")  # a second run: a fresh encoder, same cache key
    model = load_model_spec(str(tmp_path / "trained"))
    (hyb,) = hybrid_models([again, model], [again.label])
    assert hyb.label == "CellProfiler + trained"
    got = extract_features(hyb, data, ("cls", "patch_mean"), cache_dir=cache, progress=False)
    learned = extract_features(model, data, ("cls",), cache_dir=cache, progress=False)["cls"]
    assert np.array_equal(got["cls"], hybrid_features(cp, learned)) and np.array_equal(got["patch_mean"], got["cls"])


def test_hybrid_spec_in_eval_is_read_out_like_the_report_rows(tmp_path: Path) -> None:
    pytest.importorskip("cp_measure", reason="cp_measure not installed")
    lm = load_model_spec("hybrid:random:chada_vit_nano,depth=1,img_size=32")
    assert lm.label == "CellProfiler + random:chada_vit_nano,depth=1,img_size=32" and lm.parts is not None
    x = extract_features(lm, _data(), ("cls",), progress=False)["cls"]
    assert np.allclose(x.mean(0), 0, atol=1e-5)  # each block standardised over the images


def test_pixel_stats_is_a_reference_in_reports() -> None:
    from chadavit.evaluation.baselines import add_baselines

    for spec in ("pixel_stats", "pixels"):
        models, base = add_baselines([load_model_spec(spec)])
        assert spec in base and not any(m.label.startswith("random init") for m in models)
        assert hybrid_models(models, base) == []  # no "CellProfiler + pixel_stats" row
