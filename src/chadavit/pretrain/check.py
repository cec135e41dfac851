"""The end-of-run learning check: the trained backbone against random inits of the same architecture."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from chadavit.models import build_model
from chadavit.pretrain.config import PretrainConfig

log = logging.getLogger(__name__)


def run_learning_check(cfg: PretrainConfig, backbone: nn.Module, normalization: str,
                       device: torch.device) -> dict[str, Any]:
    """kNN localisation accuracy of the pretrained backbone vs the mean over ``check.random_inits`` random inits."""
    from chadavit.pretrain.knn import learning_check

    c = cfg.check
    randoms = []
    for r in range(max(1, c.random_inits)):
        with torch.random.fork_rng():
            torch.manual_seed(cfg.train.seed + 1 + r)
            # same architecture, vocabulary and input scaling (incl. "dataset" statistics) as the trained one
            randoms.append(build_model(backbone.config.replace()).to(device))
    res = learning_check(backbone, randoms, c.channels, c.n_train, c.n_test, c.size, c.seed, c.k,
                         normalization, device)
    log.info("learning check (kNN localisation on held-out synthetic cells): trained %.3f vs random init %.3f "
             "(mean of %d; chance %.3f)", res["knn_trained"], res["knn_random"], len(randoms), res["chance"])
    return res
