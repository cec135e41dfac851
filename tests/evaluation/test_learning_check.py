"""The learning check (kNN on frozen CLS embeddings), and its place after pretraining returns."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def test_knn_accuracy_and_learning_check_shapes():
    from chadavit.models import create_model
    from chadavit.evaluation.learning_check import knn_accuracy, learning_check

    torch.manual_seed(0)
    centers = torch.randn(3, 8) * 5
    y = torch.arange(60) % 3
    x = centers[y] + torch.randn(60, 8) * 0.1
    assert knn_accuracy(x[:30], y[:30], x[30:], y[30:], k=5) == 1.0
    assert knn_accuracy(x[:30], y[:30], x[30:], (y[30:] + 1) % 3, k=5) == 0.0
    small = dict(embed_dim=16, depth=1, num_heads=2, mlp_dim=32, img_size=32)
    res = learning_check(create_model("chada_vit_nano", **small), [create_model("chada_vit_nano", **small)] * 2,
                         ["DNA", "protein"], n_train=12, n_test=12, size=32)
    assert set(res) == {"chance", "knn_trained", "knn_random", "knn_random_all"} and len(res["knn_random_all"]) == 2
    assert 0 <= res["knn_trained"] <= 1


def test_pretrain_runs_the_learning_check_after_training_and_records_it(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "pretrain"))
    from tiny import tiny_config

    from chadavit.experiments.pretraining import pretrain

    cfg = tiny_config(tmp_path / "run", "train.epochs=1", "check.enabled=true", "check.n_train=12",
                      "check.n_test=12", "check.size=32", "check.random_inits=1")
    summary = pretrain(cfg)
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= recorded["knn_trained"] <= 1 and recorded["knn_trained"] == summary["knn_trained"]
    assert len(recorded["knn_random_all"]) == 1
