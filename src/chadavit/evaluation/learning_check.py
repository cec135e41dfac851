"""The learning check: weighted kNN on frozen CLS embeddings of held-out synthetic cells.

Why kNN: it has no trainable parameters, so the only thing that changes between the pretrained and
the randomly initialised encoder is the representation itself. It belongs to evaluation, and runs after
pretraining returns (:func:`chadavit.experiments.pretraining.pretrain`), so pretraining never imports evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.evaluation.protocols import knn_classify
from chadavit.models import build_model

log = logging.getLogger(__name__)


@torch.no_grad()
def embed_images(model: nn.Module, images: Sequence[np.ndarray], channel_names: Sequence[str],
                 normalization: str = "percentile", batch_size: int = 128,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``(N, D)`` CLS embeddings of same-size images sharing one channel set."""
    was_training = model.training
    model.eval()
    feats = []
    names = tuple(channel_names)
    for i in range(0, len(images), batch_size):
        chunk = images[i : i + batch_size]
        if normalization == model.config.normalization:  # the encoder's own road
            batch = model.make_batch(chunk, [names] * len(chunk))
        else:  # the run's scaling where the model does not record it
            batch = ChannelBatch.from_images(chunk, channel_names=[names] * len(chunk), normalize=normalization,
                                             stats=model.config.normalization_stats or None)
        feats.append(model(batch.to(device)).cls.float().cpu())
    model.train(was_training)
    return torch.cat(feats)


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 k: int = 10, temperature: float = 0.07) -> float:
    """DINO's weighted cosine kNN (``chadavit.evaluation.protocols.knn_classify``) as a fraction."""
    result = knn_classify(train_x.float().numpy(), train_y.numpy(), test_x.float().numpy(), test_y.numpy(), k=k,
                          temperature=temperature)
    return result["top1"] / 100.0


def learning_check(model: nn.Module, random_model: nn.Module | Sequence[nn.Module], channels: Sequence[str],
                   n_train: int = 400, n_test: int = 400, size: int = 64, seed: int = 12345, k: int = 10,
                   normalization: str = "percentile", device: torch.device | str = "cpu") -> dict[str, Any]:
    """kNN accuracy of the localisation class for a trained and randomly initialised encoder(s).

    With several random models, ``knn_random`` is their mean (random-init accuracy varies by several
    points from seed to seed) and ``knn_random_all`` lists them.
    """
    from chadavit.data.synthetic import LOCALISATIONS, generate_cells

    randoms = [random_model] if isinstance(random_model, nn.Module) else list(random_model)
    cells = generate_cells(n_train + n_test, channels=tuple(channels), size=size, seed=seed)
    y = torch.tensor(cells.labels["localisation"].to_numpy().copy(), dtype=torch.long)

    def score(m: nn.Module) -> float:
        x = embed_images(m, cells.images, cells.channel_names, normalization, device=device)
        return knn_accuracy(x[:n_train], y[:n_train], x[n_train:], y[n_train:], k=k)

    rand = [score(m) for m in randoms]
    return {"chance": 1.0 / len(LOCALISATIONS), "knn_trained": score(model),
            "knn_random": float(np.mean(rand)), "knn_random_all": rand}


def run_learning_check(check: Any, backbone: nn.Module, seed: int, normalization: str,
                       device: torch.device | str = "cpu") -> dict[str, Any]:
    """kNN localisation accuracy of ``backbone`` vs the mean over ``check.random_inits`` random inits.

    ``check`` is a pretraining config's ``check`` section; the random inits are seeded from the run's ``seed``.
    """
    randoms = []
    for r in range(max(1, check.random_inits)):
        with torch.random.fork_rng():
            torch.manual_seed(seed + 1 + r)
            # same architecture, vocabulary and input scaling (incl. "dataset" statistics) as the trained one
            randoms.append(build_model(backbone.config.replace()).to(device))
    res = learning_check(backbone, randoms, check.channels, check.n_train, check.n_test, check.size, check.seed,
                         check.k, normalization, device)
    log.info("learning check (kNN localisation on held-out synthetic cells): trained %.3f vs random init %.3f "
             "(mean of %d; chance %.3f)", res["knn_trained"], res["knn_random"], len(randoms), res["chance"])
    return res
