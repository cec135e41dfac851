"""Single-cell pretraining views: nucleus-centred crops cut once from fields, tiles without a nuclear channel."""

from __future__ import annotations

import numpy as np

from chadavit.data.dataset import DatasetWriter, open_dataset
from chadavit.data.crops import guess_nucleus_channel as nucleus_channel
from chadavit.pretrain.cells import CellCropConfig, build_cell_crops


def _field(n_nuclei: int, size: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    dna = rng.normal(10, 2, (size, size))
    centres = [(30 + 45 * (k // 4), 30 + 45 * (k % 4)) for k in range(n_nuclei)]
    for cy, cx in centres:
        dna[(yy - cy) ** 2 + (xx - cx) ** 2 < 8**2] = 200
    other = rng.normal(50, 5, (size, size))
    return np.stack([dna, other]).clip(0, 255).astype(np.uint8)


def test_nucleus_channel_by_name():
    assert nucleus_channel(["GFP", "Hoechst"]) == 1
    assert nucleus_channel(["dna"]) == 0
    assert nucleus_channel(["GFP", "actin"]) is None


def test_cells_are_cut_around_nuclei_and_fields_without_dna_are_tiled(tmp_path):
    with DatasetWriter(tmp_path / "plate") as w:
        w.add(_field(8), "A01", ["DNA", "GFP"])
        w.add(_field(8, seed=1)[1:], "A02", ["GFP"])  # no nuclear channel: tiles
    out = tmp_path / "run" / "data" / "cells"
    cfg = CellCropConfig(size=32, diameters=2.5, max_tiles_per_image=5)
    cells = build_cell_crops([open_dataset(tmp_path / "plate")], out, cfg)
    fields = cells.manifest["field_id"].tolist()
    assert fields.count("A01") == 8  # one crop per nucleus
    assert fields.count("A02") == 5  # tiles, capped
    first = cells.read(0)
    assert first.shape[0] == 2 and first.shape[1] == first.shape[2]
    side = first.shape[1]
    assert side == round(2.5 * 16) or abs(side - 2.5 * 16) <= 2  # 2.5 median nucleus diameters (16 px)
    c = side // 2
    assert first[0, c, c] == 200  # centred on a nucleus
    assert (out / "COMPLETE").is_file()
    again = build_cell_crops([], out, cfg)  # a finished cache is reused, not rebuilt
    assert len(again) == len(cells)


def test_plate_style_run_saves_vocabulary_and_dataset_statistics(tmp_path):
    """Cell views + `dataset` normalisation + `channel_vocab: auto`: the saved backbone carries what embed needs."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny import tiny_config

    from chadavit.models import load_pretrained
    from chadavit.pretrain.trainer import train

    with DatasetWriter(tmp_path / "plate") as w:
        for i in range(2):
            w.add(_field(12, seed=i), f"W{i}", ["DNA", "GFP"])
    cfg = tiny_config(tmp_path / "run", f"data.paths=[{tmp_path / 'plate'}]", "data.synthetic.channel_sets=[]",
                      "data.cells.size=32", "data.cells.diameters=2.5", "data.normalization=dataset",
                      "model.overrides.channel_embedding=identity", "model.overrides.channel_vocab=auto",
                      "train.epochs=1")
    summary = train(cfg)
    assert summary["steps"] == 24 // 8
    model = load_pretrained(summary["backbone"])
    assert model.config.channel_vocab == ["DNA", "GFP"]
    assert model.config.normalization == "dataset"
    assert model.config.crop_size == 32  # the training scale, embed's default crop size (issue 22 item 18)
    lo, hi = model.config.normalization_stats["DNA"]
    assert 0 <= lo < hi <= 1
    batch = model.make_batch([_field(1)[:, :32, :32]], channel_names=[["DNA", "GFP"]])
    assert 0 <= float(batch.planes.min()) and float(batch.planes.max()) <= 1
    # an unfinished run is used through its training checkpoint: the same encoder as backbone/ at that step
    # (channel vocabulary from the data, `dataset` statistics), not a model rebuilt from the YAML
    import torch

    from chadavit.models.spec import load_model_from_spec

    from_ckpt = load_model_from_spec(str(tmp_path / "run" / "checkpoint.pt"))
    assert from_ckpt.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), from_ckpt.state_dict().values()))
    with torch.no_grad():
        a = model(model.make_batch([_field(1)[:, :32, :32]], channel_names=[["DNA", "GFP"]])).cls
        b = from_ckpt(from_ckpt.make_batch([_field(1)[:, :32, :32]], channel_names=[["DNA", "GFP"]])).cls
    assert torch.equal(a, b)
