"""Baselines in every report: raw pixels, CellProfiler features (cp_measure), random init of each trained model;
gaps, verdicts.

A learned representation is only worth using when it beats what needs no training. `run_suite` adds these
references beside the models asked for, and the tables show each model's gap to the BEST baseline per task.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import pandas as pd

from chadavit.evaluation.features import LoadedModel, load_model_spec, weights_hash
from chadavit.evaluation.judging import LOWER_IS_BETTER, score_column
from chadavit.evaluation.judging import scale as _scale

log = logging.getLogger(__name__)
FIXED_BASELINES = ("raw_pixels", "cellprofiler")
OTHER_REFERENCES = ("pixel_stats", "pixels", "handcrafted")  # untrained when asked for: pixel stats, old stats


def is_untrained(lm: LoadedModel) -> bool:
    """True for references that were never trained: random-init specs and the pixel/hand-crafted encoders."""
    return lm.spec.startswith("random:") or lm.spec in (*OTHER_REFERENCES, *FIXED_BASELINES) or \
        lm.label.startswith("random init")


def random_twin(lm: LoadedModel, device: str = "cpu") -> LoadedModel | None:
    """The same architecture and config as ``lm`` at random initialisation (seed 0), or None if not buildable."""
    import torch

    from chadavit.models import build_model

    cfg = getattr(lm.model, "config", None)
    try:
        torch.manual_seed(0)
        model = build_model(cfg)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - an unknown model type just gets no twin, with a message
        log.warning("no random-init baseline for %s: %s", lm.label, exc)
        return None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    label = f"random init ({lm.label})"
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60] + "-" + weights_hash(model)
    return LoadedModel(spec=f"random-init-of:{lm.spec}", label=label, model=model.to(device), key=key)


def add_baselines(models: Sequence[LoadedModel], device: str = "cpu",
                  precision: str = "fp32") -> tuple[list[LoadedModel], list[str]]:
    """``models`` plus the baselines, and the labels that are baselines.

    Baselines: ``raw_pixels``, ``cellprofiler`` (labelled "CellProfiler (cp_measure)"), and a random-init twin of
    every trained model (one per distinct architecture config; a model in the list with the same weights as a twin
    is used as that twin).
    """
    out = list(models)
    hashes = {lm.key.rsplit("-", 1)[-1]: lm for lm in out}
    base = [lm.label for lm in out if lm.spec in FIXED_BASELINES]
    for spec in FIXED_BASELINES:
        if not any(lm.spec == spec for lm in out):
            out.append(load_model_spec(spec, device, precision))  # the twin runs as the model does
            base.append(out[-1].label)
    for lm in list(models):
        if is_untrained(lm):
            if lm.spec not in FIXED_BASELINES and lm.label not in base:
                base.append(lm.label)  # random init / pixel statistics asked for are references too
            continue
        twin = random_twin(lm, device)
        if twin is None:
            continue
        same = hashes.get(twin.key.rsplit("-", 1)[-1])
        if same is not None:
            if same.label not in base:
                base.append(same.label)
            continue
        hashes[twin.key.rsplit("-", 1)[-1]] = twin
        out.append(twin)
        base.append(twin.label)
    return out, base


# ---------------------------------------------------------------------------------------------- gaps and verdicts
def gap_table(summary: pd.DataFrame, primaries: dict[str, list[str]], baselines: Sequence[str]) -> pd.DataFrame:
    """Per (model, task): the model's primary-metric score (median over seeds, :func:`judging.score_column`),
    the best baseline and its score, and the gap.

    ``gap`` is model minus best baseline, signed so that positive always means better (MSE/MAE flipped);
    ``gap_unit`` puts percentages on 0-1 (divided by 100) so tasks can be averaged with R².
    """
    rows = []
    base = set(baselines)
    col = score_column(summary)
    for task, metrics in primaries.items():
        if not metrics:
            continue
        metric = metrics[0]
        sub = summary[(summary["task"] == task) & (summary["metric"] == metric)]
        bsub = sub[sub["model"].isin(base)].dropna(subset=[col])
        if bsub.empty:
            continue
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        best = bsub.loc[(sign * bsub[col]).idxmax()]
        scale = _scale(metric)
        for r in sub.to_dict("records"):
            if r["model"] in base:
                continue
            gap = sign * (float(r[col]) - float(best[col]))
            rows.append({"model": r["model"], "task": task, "metric": metric, "score": float(r[col]),
                         "best_baseline": str(best["model"]), "baseline_score": float(best[col]),
                         "gap": gap, "gap_unit": gap / scale})
    return pd.DataFrame(rows, columns=["model", "task", "metric", "score", "best_baseline", "baseline_score", "gap",
                                       "gap_unit"])


def verdicts(gaps: pd.DataFrame) -> dict[str, str]:
    """One plain sentence per model: does it beat the best baseline, on how many tasks, by how much on average."""
    out = {}
    for model, g in gaps.groupby("model", sort=False):
        n, wins = len(g), int((g["gap"] > 0).sum())
        mean_gap = float(g["gap_unit"].mean())
        if wins == n:
            head = "BEATS the best baseline on every task"
        elif wins == 0:
            head = "does NOT beat the best baseline on any task"
        else:
            head = f"beats the best baseline on {wins} of {n} tasks only"
        worst = g.loc[g["gap_unit"].idxmin()]
        tail = f" (worst: {worst['task']}, {worst['gap']:+.3g} vs {worst['best_baseline']})" if wins < n else ""
        out[str(model)] = f"{model}: {head}; mean gap {mean_gap:+.3f}{tail}"
    return out


def mean_scores(summary: pd.DataFrame, primaries: dict[str, list[str]]) -> dict[str, float]:
    """Each model's mean primary score over the tasks (each task's median over seeds), % metrics as fractions
    (MSE/MAE negated): one number per model for "the mean of the suite"; only tasks every model has are
    averaged, so the means compare."""
    keep = {(t, ms[0]) for t, ms in primaries.items() if ms}
    rows = summary[[(t, m) in keep for t, m in zip(summary["task"], summary["metric"])]]
    if rows.empty:
        return {}
    wide = rows.pivot_table(index="model", columns="task", values=score_column(rows), sort=False).dropna(axis=1)
    metric = dict(keep)
    unit = pd.DataFrame({t: wide[t] / _scale(metric[t]) * (-1.0 if metric[t] in LOWER_IS_BETTER else 1.0)
                         for t in wide.columns})
    order = list(dict.fromkeys(rows["model"]))
    return {str(m): float(unit.loc[m].mean()) for m in order if m in unit.index}
