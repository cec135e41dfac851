"""A tiny experiment (seconds per run on 2 CPU cores) written into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY_PRETRAIN = {
    "data.paths": [],
    "data.synthetic.channel_sets": [["DNA", "protein", "membrane"], ["DNA", "protein"], ["protein"]],
    "data.synthetic.images_per_study": 8,
    "data.synthetic.size": 32,
    "data.batch_size": 8,
    "data.num_workers": 0,
    "data.loader_benchmark_steps": 0,
    "augment.global_size": 32,
    "augment.local_size": 16,
    "augment.n_local": 1,
    "model.overrides": {"embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_dim": 32, "img_size": 32, "patch_size": 16},
    "dino.out_dim": 32,
    "dino.hidden_dim": 32,
    "dino.bottleneck_dim": 16,
    "optim.lr": 0.01,
    "train.epochs": 1,
    "train.max_steps": 2,
    "train.threads": 1,
    "train.log_every": 1,
    "check.enabled": False,
}

TINY_SUITE = {
    "name": "tiny",
    "seeds": [0, 1],
    "datasets": {"cells3": {"adapter": "synthetic", "n": 40, "channels": ["DNA", "protein", "membrane"], "size": 32,
                            "seed": 3}},
    "tasks": [
        {"name": "stage linear", "dataset": "cells3", "protocol": "linear", "label": "stage", "features": "cls",
         "epochs": 5},
        {"name": "stage linear all-token", "dataset": "cells3", "protocol": "linear", "label": "stage",
         "features": "all_tokens", "epochs": 5},
        {"name": "stage kNN", "dataset": "cells3", "protocol": "knn", "label": "stage", "features": "all_tokens",
         "k": 5},
    ],
}


def tiny_experiment(tmp: Path, runs: list[dict] | None = None, **extra) -> Path:
    """Write a tiny experiment + suite file into ``tmp``; returns the experiment file."""
    (tmp / "suite.yaml").write_text(yaml.safe_dump(TINY_SUITE))
    exp = {
        "name": "tiny_study",
        "out": str(tmp / "results"),
        "pretrain": {"config": "demo", "overrides": TINY_PRETRAIN},
        "evaluation": {"suite": "suite.yaml"},
        "runs": runs or [
            {"name": "chada", "label": "ChAda-ViT", "family": "ChAda-ViT", "model": "chada_vit_nano"},
            {"name": "one", "model": "one_channel_vit_tiny", "data": {"split_channels": True},
             "eval_model": {"pooling": "concat"}},
            {"name": "fixed3", "model": "fixed_channel_vit_tiny", "model_overrides": {"in_chans": 3},
             "data": {"filter": {"n_channels": [3]}}},
            {"name": "scale", "model": "chada_vit_nano", "family": "ChAda-ViT",
             "sweep": [{"suffix": "d32", "model_overrides": {"embed_dim": 32}}]},
        ],
        "report": {
            "table3": {"runs": ["chada", "one", "fixed3"],
                       "columns": [{"task": "stage linear all-token", "header": "stage linear"},
                                   {"task": "stage kNN", "header": "stage kNN"}]},
            "cls_vs_all": {"pairs": [{"title": "stage", "cls": "stage linear",
                                      "all_tokens": "stage linear all-token"}]},
            "scaling": {"runs": ["chada", "scale_d32"], "tasks": ["stage linear all-token"]},
        },
        **extra,
    }
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


@pytest.fixture
def tiny_exp(tmp_path: Path) -> Path:
    return tiny_experiment(tmp_path)
