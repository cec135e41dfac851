"""From ``chadavit embed`` rows to normalised well-level profiles, as pycytominer does it.

1. :func:`aggregate_profiles`: crops (or images) -> one median profile per plate and well;
2. :func:`normalize_profiles`: per plate, ``pycytominer.normalize`` (``mad_robustize`` by default, against the
   control wells, or all wells without a control), then ``pycytominer.feature_select`` (variance threshold,
   correlation threshold, drop NA columns) over all plates, and the default blocklist for CellProfiler features.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from chadavit.errors import ChadavitError

FEATURE_OPERATIONS = ("variance_threshold", "correlation_threshold", "drop_na_columns")


class ProfileError(ChadavitError, ValueError):
    """Profiles lack a needed column or feature, or a needed package is missing; the message says which."""


def require(module: str) -> object:
    """Import an optional dependency of the ``profiling`` extra, with a message naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ProfileError(f"profiling needs {module.split('.')[0]}: pip install 'chadavit[profiling]'") from exc


def resolve_column(df: pd.DataFrame, name: str, what: str = "column") -> str:
    """``Compound`` or ``Metadata_Compound``, whichever the table has."""
    for cand in (name, f"Metadata_{name}"):
        if cand in df.columns:
            return cand
    meta = [c for c in df.columns if c.startswith("Metadata_")]
    raise ProfileError(f"{what} {name!r} not found; metadata columns: {', '.join(meta) or 'none'}")


def feature_columns(df: pd.DataFrame, prefix: str | None = "cls") -> list[str]:
    """The feature columns: ``<prefix>_...`` (``cls_0``..., ``cp_Nuclei_AreaShape_Area``...), or every numeric
    non-``Metadata_`` column."""
    if prefix:
        cols = [c for c in df.columns if c.startswith(f"{prefix}_") and pd.api.types.is_numeric_dtype(df[c])]
    else:
        cols = [c for c in df.columns if not c.startswith("Metadata_") and pd.api.types.is_numeric_dtype(df[c])]
    if not cols:
        raise ProfileError(f"no feature columns{f' named {prefix}_...' if prefix else ''} in the table")
    return cols


def aggregate_profiles(df: pd.DataFrame, features: Sequence[str], keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Median of ``features`` per well (``Metadata_Plate`` + ``Metadata_Well``; else per image).

    Metadata columns that are constant within a well are kept; the others are dropped.
    """
    if keys is None:
        keys = [c for c in ("Metadata_Plate", "Metadata_Well") if c in df.columns and df[c].notna().any()]
        if "Metadata_Well" not in keys:
            keys = ["Metadata_ImageId"] if "Metadata_ImageId" in df.columns else keys
    if not keys:
        raise ProfileError("cannot aggregate: no Metadata_Well or Metadata_ImageId column")
    keys = list(keys)
    grouped = df.groupby(keys, dropna=False, sort=True)
    prof = grouped[list(features)].median()
    meta_cols = [c for c in df.columns if c.startswith("Metadata_") and c not in keys]
    if meta_cols:
        constant = grouped[meta_cols].nunique(dropna=False).le(1).all()
        keep = [c for c in meta_cols if constant[c]]
        prof = grouped[keep].first().join(prof)
    prof = prof.reset_index()
    prof.insert(len(keys), "Metadata_NumRows", grouped.size().to_numpy())
    return prof


def normalize_profiles(df: pd.DataFrame, features: Sequence[str], plate_col: str | None = "Metadata_Plate",
                       control_col: str | None = None, control: str | None = None, method: str = "mad_robustize",
                       feature_select: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Per-plate ``pycytominer.normalize`` then ``feature_select``; returns the table and the kept features.

    Feature selection also drops the CellProfiler features on pycytominer's default blocklist (``cp_`` columns).
    """
    pcm = require("pycytominer")
    features = list(features)
    meta = [c for c in df.columns if c not in features]
    samples = "all"
    if control is not None:
        if control_col is None:
            raise ProfileError("a control value needs its column (control_col)")
        n_ctrl = int((df[control_col].astype(str) == str(control)).sum())
        if n_ctrl == 0:
            values = ", ".join(sorted(map(str, df[control_col].dropna().unique()))[:10])
            raise ProfileError(f"no rows with {control_col} == {control!r} (values: {values})")
        samples = f"`{control_col}` == {str(control)!r}"
    work = df.copy()
    if control_col is not None:
        work[control_col] = work[control_col].astype(str)
    plates = [g for _, g in work.groupby(plate_col, sort=True, dropna=False)] if plate_col in work.columns else [work]
    parts = []
    for g in plates:
        if samples != "all" and not (g[control_col] == str(control)).any():
            plate = g[plate_col].iloc[0] if plate_col in g.columns else "?"
            raise ProfileError(f"plate {plate}: no {control} wells to normalise against")
        parts.append(pcm.normalize(g, features=features, meta_features=meta, samples=samples, method=method))
    out = pd.concat(parts, ignore_index=True)
    if feature_select:
        out = pcm.feature_select(out, features=features, operation=list(FEATURE_OPERATIONS))
    kept = [c for c in out.columns if c in set(features)]
    if feature_select:
        from chadavit.profiling.groups import blocklisted

        drop = set(blocklisted(kept))
        kept = [c for c in kept if c not in drop]
        out = out.drop(columns=sorted(drop))
    if not kept:
        raise ProfileError("feature selection removed every feature (too few wells, or constant features)")
    return out, kept
