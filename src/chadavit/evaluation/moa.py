"""The standard MoA protocol (BBBC021, Bray): per-plate DMSO normalisation, treatment profiles, 1-NN cosine,
NSC and NSCB with counts and chance levels.

* Normalisation: each plate's cell features are centred and scaled by that plate's control (DMSO) cells
  (Ljosa et al. 2013); a plate without two control cells falls back to all control cells.
* Profiles: the mean normalised feature of each treatment, a (compound, concentration) pair; control
  treatments and treatments without an MoA are not profiles.
* NSC (not-same-compound): the nearest (cosine) profile of another compound gives the predicted MoA.
* NSCB (not-same-compound-or-batch, Ando et al. 2017): neighbours sharing a batch are excluded too, and MoAs
  whose treatments all lie in one batch are dropped (they cannot be matched). Queries left with no admissible
  neighbour are not scored and are counted.
* Chance: for each query, the fraction of its admissible neighbours that share its MoA, averaged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from chadavit.evaluation.data import EvalInputError


def normalise_per_plate(x: np.ndarray, meta: pd.DataFrame, control: str | None,
                        plate_col: str = "plate") -> np.ndarray:
    """Z-score features per plate against that plate's control cells (globally when no plate or control)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    is_ctrl = (meta["compound"].astype(str) == control).to_numpy() if control is not None else np.zeros(len(x), bool)

    def zscore(rows: np.ndarray, ref: np.ndarray) -> np.ndarray:
        sd = ref.std(0)
        return (rows - ref.mean(0)) / np.where(sd > 1e-8, sd, 1.0)

    global_ref = x[is_ctrl] if is_ctrl.sum() >= 2 else x
    if control is None or plate_col not in meta.columns:
        return zscore(x, global_ref)
    out = np.empty_like(x)
    for idx in meta.groupby(plate_col, sort=False).indices.values():
        ctrl = idx[is_ctrl[idx]]
        out[idx] = zscore(x[idx], x[ctrl] if len(ctrl) >= 2 else global_ref)
    return out


def treatment_profiles(x: np.ndarray, meta: pd.DataFrame, treatment_cols: tuple[str, ...] = ("compound",
                       "concentration"), control: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Mean profile per treatment of already normalised features ``x``; one table row per profile with the
    treatment columns, ``compound``, ``moa``, ``batches`` (frozenset) and ``n_cells``."""
    cols = [c for c in treatment_cols if c in meta.columns]
    profiles, rows = [], []
    for key, idx in meta.groupby(cols, sort=True, dropna=False).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        sub = meta.iloc[idx]
        cpd = sub["compound"].iloc[0]
        moa = sub["moa"].dropna()
        if (control is not None and str(cpd) == control) or moa.empty:
            continue
        profiles.append(x[idx].mean(0))
        batches = frozenset(sub["batch"].astype(str)) if "batch" in sub else frozenset()
        rows.append(dict(zip(cols, key)) | {"compound": cpd, "moa": moa.astype(str).mode().iloc[0],
                                            "batches": batches, "n_cells": len(idx)})
    dim = x.shape[1] if x.ndim == 2 else 0
    return (np.asarray(profiles) if profiles else np.zeros((0, dim))), pd.DataFrame(
        rows, columns=[*cols, "compound", "moa", "batches", "n_cells"] if not rows else None)


def single_batch_moas(table: pd.DataFrame) -> set[str]:
    """MoAs whose treatments all come from one batch (NSCB cannot match them)."""
    out = set()
    for moa, sub in table.groupby("moa"):
        batches = frozenset().union(*sub["batches"]) if len(sub) else frozenset()
        if len(batches) < 2:
            out.add(str(moa))
    return out


def _one_nn(sim: np.ndarray, comp: np.ndarray, moa: np.ndarray, batches: list[frozenset[str]] | None,
            ) -> tuple[float, float, int]:
    hits, chance, n = 0, 0.0, 0
    for i in range(len(comp)):
        ok = comp != comp[i]
        if batches is not None:
            ok &= np.array([not (b & batches[i]) for b in batches], dtype=bool)
        if not ok.any():
            continue
        j = int(np.argmax(np.where(ok, sim[i], -np.inf)))
        hits += int(moa[j] == moa[i])
        chance += float((moa[ok] == moa[i]).mean())
        n += 1
    return (100.0 * hits / n if n else float("nan")), (100.0 * chance / n if n else float("nan")), n


def moa_scores(profiles: np.ndarray, table: pd.DataFrame) -> dict[str, float]:
    """NSC and NSCB accuracy (%) with chance levels and the counts of treatments, compounds, MoAs and scored
    queries in each evaluation (``n_*_nsc``, ``n_*_nscb``)."""
    out: dict[str, float] = {}
    comp_all = table["compound"].astype(str).to_numpy() if len(table) else np.array([], str)
    moa_all = table["moa"].astype(str).to_numpy() if len(table) else np.array([], str)
    p = torch.nn.functional.normalize(torch.from_numpy(np.asarray(profiles, np.float64)).float(), dim=1)
    sim = (p @ p.T).numpy() if len(p) else np.zeros((0, 0))
    batches_all = list(table["batches"]) if "batches" in table else [frozenset()] * len(table)
    dropped = single_batch_moas(table.assign(batches=batches_all)) if len(table) else set()
    for name in ("nsc", "nscb"):
        keep = np.ones(len(table), bool) if name == "nsc" else ~np.isin(moa_all, sorted(dropped))
        idx = np.nonzero(keep)[0]
        acc, chance, n = _one_nn(sim[np.ix_(idx, idx)], comp_all[idx], moa_all[idx],
                                 [batches_all[i] for i in idx] if name == "nscb" else None)
        out |= {name: acc, f"{name}_chance": chance, f"n_treatments_{name}": float(len(idx)),
                f"n_compounds_{name}": float(len(set(comp_all[idx]))), f"n_moas_{name}": float(len(set(moa_all[idx]))),
                f"n_queries_{name}": float(n)}
    return out


def moa_retrieval(features: np.ndarray, meta: pd.DataFrame, seed: int = 0, cell_fraction: float = 0.8,
                  control: str | None = None,
                  treatment_cols: tuple[str, ...] = ("compound", "concentration")) -> dict[str, float]:
    """The full protocol on per-cell features; a seeded ``cell_fraction`` of the cells builds the profiles
    (frozen features make 1-NN deterministic, so the seed's spread is the profiles' sampling uncertainty)."""
    if "moa" not in meta.columns or "compound" not in meta.columns:
        raise EvalInputError("MoA retrieval needs 'compound' and 'moa' label columns")
    meta = meta.reset_index(drop=True)
    x = normalise_per_plate(features, meta, control)
    rng = np.random.default_rng(seed)
    keep = np.ones(len(meta), bool) if cell_fraction >= 1 else rng.random(len(meta)) < cell_fraction
    profiles, table = treatment_profiles(x[keep], meta[keep].reset_index(drop=True), treatment_cols, control)
    if len(table) < 2:
        raise EvalInputError(f"MoA retrieval needs at least 2 annotated treatments, found {len(table)} "
                         "(are the MoA labels and treatments in the dataset?)")
    return moa_scores(profiles, table)
