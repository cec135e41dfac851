"""One task of a suite for one model: its features (cached), its protocol over the seeds, its result rows.

Protocols (``linear``, ``knn``, ``regression``, ``moa``, ``reconstruction``, ``missing_channels``) are dispatched
by name in :meth:`TaskRunner.run_task`; each is a method here, the probes themselves live in
:mod:`chadavit.evaluation.protocols`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chadavit.evaluation import protocols as P
from chadavit.evaluation.data import EvalData
from chadavit.evaluation.features import LoadedModel, extract_features
from chadavit.evaluation.reconstruction import channel_reconstruction, reconstruction_targets
from chadavit.evaluation.suite_schema import SuiteError

Add = Callable[[int, dict[str, float]], None]


@dataclass
class Task:
    name: str
    dataset: str
    protocol: str
    label: str | None = None
    features: str = "cls"
    params: dict[str, Any] = field(default_factory=dict)


def split(data: EvalData, labels: np.ndarray | None, seed: int, test_fraction: float,
          train_on_val: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: the dataset's own ``split`` column, else grouped by ``group``, else random."""
    if "split" in data.labels.columns:
        return P.split_from_column(data.labels["split"], train_on_val)
    if "group" in data.labels.columns:  # cells of one field (block) stay on one side
        from chadavit.evaluation.splits import grouped_split_indices

        return grouped_split_indices(data.labels["group"].to_numpy(), seed, test_fraction, labels)
    return P.train_test_split_indices(labels, seed, test_fraction, n=len(data))


def _probe_cfg(params: dict[str, Any]) -> P.ProbeConfig:
    keys = ("epochs", "lr", "weight_decay", "batch_size")
    return P.ProbeConfig(**{k: type(getattr(P.ProbeConfig, k))(params[k]) for k in keys if k in params})


def _labels(data: EvalData, task: Task) -> np.ndarray:
    if task.label is None or task.label not in data.labels.columns:
        raise SuiteError(f"task {task.name!r}: dataset {data.name} has no label column {task.label!r} "
                         f"(columns: {list(data.labels.columns)})")
    return data.labels[task.label].to_numpy()


def reconstruction_channels(task: Task, data: EvalData) -> tuple[int, list[int]]:
    """A reconstruction task's target channel index in ``data`` and the input channels its features are read
    from (every fixed channel but the target); :class:`SuiteError` where the dataset lacks the target."""
    fixed = data.fixed_channels
    target_name = task.params.get("target_channel")
    if fixed is None or target_name not in fixed:
        raise SuiteError(f"task {task.name!r}: dataset {data.name} must have fixed channels including "
                         f"{target_name!r}; has {fixed}")
    t_idx = fixed.index(target_name)
    return t_idx, [i for i in range(len(fixed)) if i != t_idx]


class TaskRunner:
    """Runs tasks of one suite, with one feature cache (``OUT/cache``) and the figures' artefacts."""

    def __init__(self, suite: Any, out_dir: Path, progress: bool, say: Any, device: str = "cpu") -> None:
        self.suite, self.out_dir, self.progress, self.say = suite, out_dir, progress, say
        self.device = device
        self.cache = out_dir / "cache"
        self.artifacts: dict[str, Any] = {}
        self.fits: dict[str, list[tuple[int, dict[str, float]]]] = {}  # probe_key -> each seed's metrics

    def probe_key(self, task: Task, data: EvalData, x: np.ndarray, physical_units: bool = False) -> str:
        """What a probe's result depends on: the features (and whether they are in physical units, which kNN
        standardises), the dataset (its labels and splits), the label, the protocol, its settings and the seeds. A
        reference's vector is every read-out (``cls``, ``patch_mean``, ``all_tokens``), so its tasks that differ
        only in the read-out fit the same probe."""
        h = hashlib.sha1(np.ascontiguousarray(x).tobytes())
        h.update(json.dumps([str(x.dtype), x.shape, physical_units, data.name, data.fingerprint(), task.label,
                             task.protocol, task.params, list(self.suite.seeds)], sort_keys=True, default=str).encode())
        return h.hexdigest()

    def features(self, lm: LoadedModel, data: EvalData, kind: str, channels: Sequence[int] | None = None) -> np.ndarray:
        return extract_features(lm, data, (kind,), channels=channels, batch_size=self.suite.batch_size,
                                cache_dir=self.cache, progress=self.progress)[kind]

    def run_task(self, lm: LoadedModel, task: Task, data: EvalData) -> list[dict[str, Any]]:
        """Every seed of ``task`` for ``lm``: one row per (seed, metric)."""
        rows: list[dict[str, Any]] = []

        def add(seed: int, metrics: dict[str, float]) -> None:
            rows.extend([{"model": lm.label, "task": task.name, "dataset": data.name, "protocol": task.protocol,
                          "features": task.features, "seed": seed, "metric": k, "value": float(v)}
                         for k, v in metrics.items()])

        run = {"linear": self._probe, "knn": self._probe, "regression": self._probe, "moa": self._moa,
               "reconstruction": self._reconstruction, "missing_channels": self._missing_channels}.get(task.protocol)
        if run is not None:
            run(lm, task, data, add)
        return rows

    def _probe(self, lm: LoadedModel, task: Task, data: EvalData, add: Add) -> None:
        """Linear, kNN or regression probes, one per seed; a probe already fitted on the same inputs in this run
        (:meth:`probe_key`) gives its scores again instead of being fitted twice."""
        prm = task.params
        y = _labels(data, task)
        x = self.features(lm, data, task.features)
        key = self.probe_key(task, data, x, lm.physical_units)
        if key in self.fits:
            for s, m in self.fits[key]:
                add(s, m)
            return
        fitted: list[tuple[int, dict[str, float]]] = []
        strat = None if task.protocol == "regression" else y
        for s in self.suite.seeds:
            tr, te = split(data, strat, s, float(prm.get("test_fraction", 0.3)), bool(prm.get("train_on_val", False)))
            if task.protocol == "linear":
                m = P.linear_probe(x[tr], y[tr], x[te], y[te], seed=s, cfg=_probe_cfg(prm),
                                   solver=str(prm.get("solver", "sgd")), balanced=prm.get("class_weight") == "balanced")
            elif task.protocol == "knn":
                m = P.knn_classify(x[tr], y[tr], x[te], y[te], k=int(prm.get("k", 20)),
                                   temperature=float(prm.get("temperature", 0.07)),
                                   standardise=lm.physical_units)
            else:
                m = P.linear_regression(x[tr], y[tr].astype(np.float64), x[te], y[te].astype(np.float64), seed=s,
                                        cfg=_probe_cfg(prm), solver=str(prm.get("solver", "sgd")))
            add(s, m)
            fitted.append((s, m))
        self.fits[key] = fitted  # only a probe that finished every seed is given again

    def _moa(self, lm: LoadedModel, task: Task, data: EvalData, add: Add) -> None:
        prm = task.params
        x = self.features(lm, data, task.features)
        cols = tuple(prm.get("treatment", ("compound", "concentration")))
        for s in self.suite.seeds:
            add(s, P.moa_retrieval(x, data.labels, seed=s, cell_fraction=float(prm.get("cell_fraction", 0.8)),
                                   control=prm.get("control"), treatment_cols=cols))

    def _reconstruction(self, lm: LoadedModel, task: Task, data: EvalData, add: Add) -> None:
        prm, seeds = task.params, self.suite.seeds
        target_name = prm.get("target_channel")
        t_idx, inputs = reconstruction_channels(task, data)
        z = self.features(lm, data, "cls", channels=inputs)
        targets = reconstruction_targets(data.images, t_idx, prm.get("target_size"))
        for s in seeds:
            tr, te = split(data, None, s, float(prm.get("test_fraction", 0.3)))
            m, pred = channel_reconstruction(z[tr], targets[tr], z[te], targets[te], seed=s,
                                             epochs=int(prm.get("epochs", 30)), width=float(prm.get("width", 1.0)),
                                             lr=float(prm.get("lr", 3e-3)), device=self.device)
            add(s, {k: m[k] for k in ("r2", "mse", "mae")})
            if s == seeds[0]:
                self.artifacts.setdefault("reconstruction_by_task", {}).setdefault(task.name, {})[lm.label] = {
                    "index": te[:4], "pred": pred[:4], "target": targets[te[:4]], "inputs": inputs,
                    "target_name": target_name, "data": data}

    def _missing_channels(self, lm: LoadedModel, task: Task, data: EvalData, add: Add) -> None:
        prm = task.params
        fixed = data.fixed_channels
        if fixed is None:
            raise SuiteError(f"task {task.name!r}: missing-channel curve needs a fixed channel set")
        y = _labels(data, task)
        c = len(fixed)
        combos = {k: list(itertools.combinations(range(c), k)) for k in range(1, c + 1)}
        feats = {cb: self.features(lm, data, task.features, channels=None if len(cb) == c else cb)
                 for k in combos for cb in combos[k]}
        dims = {f.shape[1:] for f in feats.values()}
        if len(dims) > 1:
            raise SuiteError(f"task {task.name!r}: {lm.label} gives {task.features} features of different sizes "
                             f"for different channel subsets {sorted(dims)}")
        head = str(prm.get("head", "linear"))
        for s in self.suite.seeds:
            tr, te = split(data, y, s, float(prm.get("test_fraction", 0.3)))
            rng = np.random.default_rng([s, 17])
            full = feats[combos[c][0]]
            views = []
            for k in range(1, c + 1):
                pick = rng.integers(len(combos[k]), size=len(te))
                views.append((np.stack([feats[combos[k][j]][i] for i, j in zip(te, pick)]), y[te]))
            if head == "knn":
                scores = [P.knn_classify(full[tr], y[tr], xv, yv, k=int(prm.get("k", 20))) for xv, yv in views]
            else:  # one probe per seed, scored on every k
                scores = P.linear_probe_multi(full[tr], y[tr], views, seed=s, cfg=_probe_cfg(prm))
            add(s, {f"top1@{k}/{c}": m["top1"] for k, m in zip(range(1, c + 1), scores)})
