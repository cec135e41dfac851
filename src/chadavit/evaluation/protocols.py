"""Evaluation protocols on frozen features: linear probe, weighted kNN, linear regression, MoA retrieval, splits.

Every function takes plain arrays and a ``seed`` so it can be tested on data with a known answer and
reused by the suite runner. Probes are trained with torch on standardised features (mean/std of the
training split), which makes one learning rate work for every encoder; the official code feeds raw
features, which only changes optimisation speed, not the linear hypothesis class. Where training sets are a few
hundred cells (the `real` suite), suites ask for the closed-form or converged fits instead, with the penalty picked
by cross-validation on the training split: ``solver: ridge`` (regression) and ``solver: logistic`` (classification).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from chadavit.evaluation.data import EvalInputError

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's CPU thread count (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def single_threaded(fn: F) -> F:
    """Probes are many tiny ops: one thread is fastest, and far faster on a shared, loaded CPU."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- splits
def train_test_split_indices(labels: np.ndarray | None, seed: int, test_fraction: float = 0.3,
                             n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split; stratified by ``labels`` when every class has at least two members."""
    rng = np.random.default_rng(seed)
    n = len(labels) if labels is not None else int(n)  # type: ignore[arg-type]
    if labels is not None and not np.issubdtype(np.asarray(labels).dtype, np.floating):
        lab = np.asarray(labels)
        classes, counts = np.unique(lab, return_counts=True)
        if counts.min() >= 2:
            test = []
            for c in classes:
                idx = rng.permutation(np.nonzero(lab == c)[0])
                k = min(max(1, int(round(len(idx) * test_fraction))), len(idx) - 1)
                test += idx[:k].tolist()
            test_arr = np.sort(np.array(test))
            return np.setdiff1d(np.arange(n), test_arr), test_arr
    perm = rng.permutation(n)
    k = max(1, int(round(n * test_fraction)))
    return np.sort(perm[k:]), np.sort(perm[:k])


def split_from_column(split: pd.Series, train_on_val: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train and ``test`` rows of a fixed split column; ``val`` rows are left out (a published
    validation set is for model selection, which a fixed-epoch probe does not do) unless ``train_on_val``."""
    s = split.astype(str).str.lower().to_numpy()
    train = (s != "test") if train_on_val else ~np.isin(s, ["test", "val"])
    return np.nonzero(train)[0], np.nonzero(s == "test")[0]


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    mu = train.mean(0, keepdims=True)
    sd = train.std(0, keepdims=True)
    sd = np.where(sd > 1e-8, sd, 1.0)
    return [torch.from_numpy(((a - mu) / sd).astype(np.float32)) for a in (train, *others)]


# ---------------------------------------------------------------------------------------------- linear probe
@dataclass
class ProbeConfig:
    epochs: int = 100
    lr: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 256


def _train_linear(x: torch.Tensor, y: torch.Tensor, out_dim: int, loss_fn: nn.Module, seed: int,
                  cfg: ProbeConfig) -> nn.Linear:
    gen = torch.Generator().manual_seed(int(seed))
    layer = nn.Linear(x.shape[1], out_dim)
    with torch.no_grad():  # seeded initialisation (part of what the seed changes)
        bound = 1.0 / max(1, x.shape[1]) ** 0.5
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.zero_()
    opt = torch.optim.AdamW(layer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, -(-len(x) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=gen)  # seeded data order
        for i in range(0, len(x), cfg.batch_size):
            b = order[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(layer(x[b]), y[b]).backward()
            opt.step()
            sched.step()
    return layer


LOGISTIC_CS = np.logspace(-4, 2, 13)  # inverse penalties tried by solver="logistic" (C = 1 / (n * weight decay))


@single_threaded
def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int = 0,
                 cfg: ProbeConfig | None = None, solver: str = "sgd", balanced: bool = False) -> dict[str, float]:
    """Multinomial logistic regression on frozen features; returns top-1 accuracy and macro F1 (%).

    ``solver="sgd"``: an ``nn.Linear`` trained with AdamW (the paper's head; seeded init and order).
    ``solver="logistic"``: the same model fitted to convergence (L-BFGS) with its penalty picked by stratified k-fold
    CV on the training split (log-loss; k = the rarest class's count, 2 to 4), the classification twin of
    ``linear_regression(solver="ridge")``. Why: with a few hundred training cells and more feature dimensions, the
    SGD head separates the training set and stops wherever its init and data order leave it. On the `real` mitosis
    task (16 mitotic cells of 291) its median macro F1 moved by 10 points when the same features came as float64
    instead of float32, and raw pixels scored 46 against 78 for the converged fit (docs/evaluation.md, "The
    classification probe").

    ``balanced`` (logistic only) weighs each class's cells by ``n / (classes x count)``, so the fit gives every class
    the same weight, as macro F1 scores them. Unweighted, a weak feature set on a 5.5 %-positive task is fitted
    best by never calling the rare class, and every such model scores the same all-negative F1.
    """
    if solver == "logistic":
        return _logistic_cv(x_train, y_train, x_test, y_test, balanced)
    if solver != "sgd":
        raise EvalInputError(f"unknown linear-probe solver {solver!r}; use 'sgd' or 'logistic'")
    if balanced:
        raise EvalInputError("balanced class weights are offered with solver='logistic' only")
    return linear_probe_multi(x_train, y_train, [(x_test, y_test)], seed, cfg)[0]


def _logistic_cv(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 balanced: bool = False) -> dict[str, float]:
    """L-BFGS multinomial logistic regression, penalty from :data:`LOGISTIC_CS` by CV; deterministic (no seed)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    xtr, xte = (t.numpy() for t in _standardise(x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)))
    xtr, xte = _training_row_space(xtr, xte)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(np.unique(y_train)) < 2:
        raise EvalInputError(f"the training split holds one class only ({y_train[0]!r}); a classifier needs two")
    folds = int(np.clip(np.unique(y_train, return_counts=True)[1].min(), 2, 4))  # a rare class sits in every fold
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")  # 1.9: l1_ratios, attributes
        clf = LogisticRegressionCV(Cs=LOGISTIC_CS, cv=StratifiedKFold(folds), scoring="neg_log_loss", max_iter=3000,
                                   class_weight="balanced" if balanced else None).fit(xtr, y_train)
    pred = clf.predict(xte)
    return {"top1": 100.0 * float((pred == y_test).mean()),
            "macro_f1": 100.0 * float(f1_score(y_test, pred, average="macro", zero_division=0))}


def _training_row_space(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both splits in coordinates of the span of the training rows, when there are more columns than rows.

    An L2-penalised linear model's weights lie in that span (also for a CV fold's fit, whose rows are a subset), and
    coordinates in an orthonormal basis keep both the scores ``x @ w`` and the penalty ``|w|²``. So the fit is the
    same problem in at most n instead of d dimensions: 25 instead of 2,048 for raw pixels on yeast, whose L-BFGS
    fits took a minute of the demo.
    """
    if xtr.shape[1] <= xtr.shape[0]:
        return xtr, xte
    _, sv, vt = np.linalg.svd(xtr.astype(np.float64), full_matrices=False)
    basis = vt[sv > sv[0] * 1e-10].T if sv.size and sv[0] > 0 else vt[:1].T
    return xtr @ basis, xte.astype(np.float64) @ basis


@single_threaded
def linear_probe_multi(x_train: np.ndarray, y_train: np.ndarray, tests: list[tuple[np.ndarray, np.ndarray]],
                       seed: int = 0, cfg: ProbeConfig | None = None) -> list[dict[str, float]]:
    """One probe trained once, scored on several test sets (e.g. the k-channel views of the missing-channel curve)."""
    from sklearn.metrics import f1_score

    cfg = cfg or ProbeConfig()
    classes, y_all = np.unique(np.concatenate([y_train, *[t[1] for t in tests]]), return_inverse=True)
    ytr = y_all[: len(y_train)]
    xs = _standardise(x_train.reshape(len(x_train), -1), *[t[0].reshape(len(t[0]), -1) for t in tests])
    with torch.enable_grad():
        layer = _train_linear(xs[0], torch.from_numpy(ytr).long(), len(classes), nn.CrossEntropyLoss(), seed, cfg)
    out, start = [], len(y_train)
    for xte, (_, yt) in zip(xs[1:], tests):
        yte = y_all[start : start + len(yt)]
        start += len(yt)
        with torch.no_grad():
            pred = layer(xte).argmax(1).numpy()
        out.append({"top1": 100.0 * float((pred == yte).mean()),
                    "macro_f1": 100.0 * float(f1_score(yte, pred, average="macro", zero_division=0))})
    return out


# ---------------------------------------------------------------------------------------------- kNN
@single_threaded
def knn_classify(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, k: int = 20,
                 temperature: float = 0.07, standardise: bool = False) -> dict[str, float]:
    """DINO-style weighted kNN: cosine similarity, votes weighted by ``exp(sim / T)``; top-1 accuracy (%).

    ``standardise``: every feature first to mean 0 / std 1 on the training split, for features in physical units
    (CellProfiler's areas in pixels beside intensities on 0-1: unscaled, the largest columns alone set the cosine).
    An embedding is compared as it is, as DINO's protocol does.
    """
    classes, y_all = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    ytr, yte = y_all[: len(y_train)], y_all[len(y_train) :]
    xtr, xte = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    # float64 statistics: CellProfiler columns reach 1e9
    tr, te = _standardise(xtr.astype(np.float64), xte.astype(np.float64)) if standardise else (
        torch.from_numpy(xtr).float(), torch.from_numpy(xte).float())
    tr, te = (torch.nn.functional.normalize(t, dim=1) for t in (tr, te))
    kk = min(k, len(tr))
    ytr_t = torch.from_numpy(ytr).long()
    preds = []
    for i in range(0, len(te), 1024):  # chunks bound the similarity matrix's memory
        top_sim, top_idx = (te[i : i + 1024] @ tr.T).topk(kk, dim=1)
        votes = torch.zeros(len(top_sim), len(classes))
        # exp((sim - max sim) / T): votes proportional to exp(sim / T), without overflow at small T
        votes.scatter_add_(1, ytr_t[top_idx], ((top_sim - top_sim[:, :1]) / temperature).exp())
        preds.append(votes.argmax(1))
    pred = torch.cat(preds).numpy()
    return {"top1": 100.0 * float((pred == yte).mean())}


# ---------------------------------------------------------------------------------------------- regression
def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """R2, MSE, MAE and Pearson r of flattened predictions."""
    p, t = np.asarray(pred, np.float64).ravel(), np.asarray(target, np.float64).ravel()
    mse = float(((p - t) ** 2).mean())
    var = float(((t - t.mean()) ** 2).mean())
    r2 = 1.0 - mse / var if var > 0 else float("nan")
    pearson = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
    return {"r2": r2, "mse": mse, "mae": float(np.abs(p - t).mean()), "pearson": pearson}


@single_threaded
def linear_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                      seed: int = 0, cfg: ProbeConfig | None = None, solver: str = "sgd") -> dict[str, float]:
    """Linear regression head on frozen features; metrics in target units.

    ``solver="sgd"``: an ``nn.Linear`` trained with MSE (the paper's head; seeded init and order).
    ``solver="ridge"``: closed-form ridge with the penalty picked by leave-one-out CV on the training split
    (``RidgeCV``), the better choice when there are fewer training images than feature dimensions.
    """
    if solver == "ridge":
        from sklearn.linear_model import RidgeCV

        xtr, xte = _standardise(x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1))
        reg = RidgeCV(alphas=np.logspace(-2, 5, 15)).fit(xtr.numpy(), np.asarray(y_train, np.float64))
        return regression_metrics(reg.predict(xte.numpy()), y_test)
    if solver != "sgd":
        raise EvalInputError(f"unknown regression solver {solver!r}; use 'sgd' or 'ridge'")
    cfg = cfg or ProbeConfig()
    mu, sd = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
    xtr, xte = _standardise(x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1))
    ytr = torch.from_numpy(((np.asarray(y_train, np.float32) - mu) / sd)[:, None])
    with torch.enable_grad():
        layer = _train_linear(xtr, ytr, 1, nn.MSELoss(), seed, cfg)
    with torch.no_grad():
        pred = layer(xte).numpy()[:, 0] * sd + mu
    return regression_metrics(pred, y_test)


# ---------------------------------------------------------------------------------------------- MoA retrieval
def aggregate_profiles(features: np.ndarray, meta: pd.DataFrame, treatment_cols: tuple[str, ...] = ("compound",
                       "concentration"), control: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Treatment profiles after per-plate control normalisation (:mod:`chadavit.evaluation.moa`)."""
    from chadavit.evaluation.moa import normalise_per_plate, treatment_profiles

    meta = meta.reset_index(drop=True)
    return treatment_profiles(normalise_per_plate(features, meta, control), meta, treatment_cols, control)


def moa_nn_accuracy(profiles: np.ndarray, table: pd.DataFrame) -> dict[str, float]:
    """1-NN (cosine) NSC and NSCB accuracy, chance levels and counts (:func:`chadavit.evaluation.moa.moa_scores`)."""
    from chadavit.evaluation.moa import moa_scores

    return moa_scores(profiles, table)


def moa_retrieval(features: np.ndarray, meta: pd.DataFrame, seed: int = 0, cell_fraction: float = 0.8,
                  control: str | None = None,
                  treatment_cols: tuple[str, ...] = ("compound", "concentration")) -> dict[str, float]:
    """The standard MoA protocol on per-cell features (:func:`chadavit.evaluation.moa.moa_retrieval`)."""
    from chadavit.evaluation.moa import moa_retrieval as run

    return run(features, meta, seed, cell_fraction, control, treatment_cols)
