"""Bag-of-channels training (`data.split_channels`) keeps the stains' dataset statistics of the whole images."""

from __future__ import annotations

import sys
from pathlib import Path

from chadavit.pretrain.data import resolve_paths, synthetic_dir
from chadavit.pretrain.inputs import prepare_inputs

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402


def _inputs(out: Path, *extra: str):
    # 3 studies x 40 images: 120 whole images, 280 single-channel ones, more than the 256 the statistics sample
    cfg = tiny_config(out, "data.normalization=dataset", "data.synthetic.images_per_study=40", *extra)
    return prepare_inputs(cfg, resolve_paths(cfg), synthetic_dir(cfg), True, None)


def test_split_channels_trains_on_single_channels_with_the_unsplit_statistics(tmp_path: Path) -> None:
    whole = _inputs(tmp_path / "whole")
    split = _inputs(tmp_path / "split", "data.split_channels=true")
    n_whole = sum(len(d) for d in whole.datasets)
    assert sum(len(d) for d in split.datasets) > n_whole  # one image per channel
    assert all(len(names) == 1 for d in split.datasets for names in d.manifest["channel_names"])
    assert split.stats == whole.stats  # the same stains, the same pixels: the same ranges
    assert split.backbone.config.normalization_stats == whole.backbone.config.normalization_stats
