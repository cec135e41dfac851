"""Mean average precision (mAP) with copairs, as the JUMP Cell Painting consortium reports it.

* **Replicate retrieval**: each profile of a treatment queries all others; its replicates are the
  positives, profiles of other treatments (controls included) the negatives. mAP per treatment.
* **MoA retrieval**: treatments are first collapsed to consensus profiles (median of replicates);
  each queries the others; positives share its MoA but are a *different compound*, negatives have
  another MoA. mAP per MoA.
* **Significance**: copairs' permutation p-value of each mAP, Benjamini-Hochberg corrected over the
  reported groups (controls excluded); ``fraction_retrieved`` is the share with corrected p < threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from chadavit.profiling.prepare import ProfileError, require

RESULT_COLUMNS = ("mean_average_precision", "p_value", "corrected_p_value", "retrieved", "n_profiles")


@dataclass
class MapResult:
    """Per-group tables (``replicate``: one row per treatment, ``moa``: one per MoA) and their summary."""

    replicate: pd.DataFrame
    moa: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def _fdr(p: np.ndarray) -> np.ndarray:
    multipletests = require("statsmodels.stats.multitest").multipletests  # type: ignore[attr-defined]
    return multipletests(p, method="fdr_bh")[1] if len(p) else p


def _retrieval(meta: pd.DataFrame, feats: np.ndarray, sameby: list[str], pos_diffby: list[str],
               report_mask: np.ndarray, null_size: int, threshold: float, seed: int, distance: str) -> pd.DataFrame:
    cmap = require("copairs.map")
    meta = meta.reset_index(drop=True).astype(str)
    # one key per group: copairs' diffby over several columns would demand that *every* column differ
    meta["_group"] = meta[sameby].agg("\x1f".join, axis=1)
    unpaired = require("copairs.matching").UnpairedException  # type: ignore[attr-defined]
    try:
        ap = cmap.average_precision(meta, feats, pos_sameby=["_group"], pos_diffby=pos_diffby, neg_sameby=[],
                                    neg_diffby=["_group"], distance=distance, progress_bar=False)
    except unpaired as exc:
        raise ProfileError(f"cannot form pairs for {sameby} (positives need 2+ profiles per group, negatives another "
                           f"group): copairs says {exc}") from exc
    if len(ap) != len(meta):  # copairs returns one row per profile, in order
        raise ProfileError(f"copairs returned {len(ap)} rows for {len(meta)} profiles; unsupported copairs version")
    ap = ap[report_mask & (ap["n_pos_pairs"].to_numpy() > 0)]
    if ap.empty:
        raise ProfileError(f"no profile has a positive pair for {sameby} (need at least 2 per group)")
    res = cmap.mean_average_precision(ap, sameby, null_size=null_size, threshold=threshold, seed=seed,
                                      progress_bar=False)
    counts = ap.groupby(sameby).size().rename("n_profiles").reset_index()
    res = res.merge(counts, on=sameby)
    res["corrected_p_value"] = _fdr(res["p_value"].to_numpy())
    res["retrieved"] = res["corrected_p_value"] < threshold
    return res[[*sameby, *RESULT_COLUMNS]].sort_values(sameby).reset_index(drop=True)


def _summary(res: pd.DataFrame, name: str) -> dict[str, Any]:
    return {f"{name}_map": float(res["mean_average_precision"].mean()),
            f"{name}_fraction_retrieved": float(res["retrieved"].mean()), f"{name}_groups": int(len(res))}


def map_scores(profiles_df: pd.DataFrame, by: Sequence[str], features: Sequence[str] | None = None,
               control: str | None = None, control_col: str | None = None, moa_col: str | None = None,
               compound_col: str | None = None, null_size: int = 10000, threshold: float = 0.05, seed: int = 0,
               distance: str = "cosine") -> MapResult:
    """Replicate and (with ``moa_col``) MoA retrieval mAP of profiles, with FDR-corrected significance.

    ``profiles_df`` has one row per profile (e.g. per well, already normalised) with metadata columns
    and ``features`` (default: every numeric column not named ``Metadata_*``). ``by`` names the
    treatment columns (e.g. ``["Metadata_Compound", "Metadata_Concentration"]``); rows whose
    ``control_col`` (default ``by[0]``) equals ``control`` are negatives only, never queries.
    ``compound_col`` (default ``by[0]``) is what MoA positives must differ in.
    """
    by = list(by)
    if not by:
        raise ProfileError("map_scores needs at least one treatment column in `by`")
    missing = [c for c in [*by, moa_col] if c is not None and c not in profiles_df.columns]
    if missing:
        raise ProfileError(f"columns {missing} not in the profiles (have {list(profiles_df.columns)[:20]}...)")
    if features is None:
        features = [c for c in profiles_df.columns
                    if not str(c).startswith("Metadata_") and c not in by and c != moa_col
                    and pd.api.types.is_numeric_dtype(profiles_df[c])]
    feats = profiles_df[list(features)].to_numpy(np.float64)
    if not np.isfinite(feats).all():
        raise ProfileError("profiles contain NaN or infinite feature values; drop or impute them first")
    control_col = control_col or by[0]
    compound_col = compound_col or by[0]
    is_ctrl = (profiles_df[control_col].astype(str) == str(control)).to_numpy() if control is not None else \
        np.zeros(len(profiles_df), bool)
    rep = _retrieval(profiles_df[by], feats, by, [], ~is_ctrl, null_size, threshold, seed, distance)
    result = MapResult(replicate=rep, summary=_summary(rep, "replicate"))
    if moa_col is not None:
        keep = ~is_ctrl & profiles_df[moa_col].notna().to_numpy() & (profiles_df[moa_col].astype(str) != "").to_numpy()
        sub = profiles_df.loc[keep, list(dict.fromkeys([*by, compound_col, moa_col]))].astype(str)
        sub_feats = pd.DataFrame(feats[keep], index=sub.index)
        cons = sub_feats.groupby([sub[c] for c in by]).median()
        cons_meta = sub.groupby(by).first().loc[cons.index].reset_index()
        moa = _retrieval(cons_meta[list(dict.fromkeys([compound_col, moa_col]))], cons.to_numpy(), [moa_col],
                         [compound_col], np.ones(len(cons), bool), null_size, threshold, seed, distance)
        result.moa = moa
        result.summary.update(_summary(moa, "moa"))
    result.summary.update({"null_size": null_size, "threshold": threshold, "distance": distance,
                           "n_profiles": int(len(profiles_df)), "n_control_profiles": int(is_ctrl.sum())})
    return result
