"""The ``chadavit profile`` pipeline on a file: read, join a plate map, aggregate, normalise, score, write."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from chadavit.atomic import write_atomic
from chadavit.profiling.map import map_scores
from chadavit.profiling.prepare import (
    ProfileError,
    aggregate_profiles,
    feature_columns,
    normalize_profiles,
    resolve_column,
)


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"{p}: file not found")
    try:
        return pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - pyarrow and pandas raise many types for bad files
        raise ProfileError(f"{p}: unreadable table ({type(exc).__name__}: {exc})") from exc


def join_platemap(df: pd.DataFrame, platemap: str | os.PathLike[str]) -> pd.DataFrame:
    """Add a plate map's columns (``Metadata_`` prefixed) by well, and by plate when both tables have one."""
    pm = read_table(platemap)
    pm = pm.rename(columns={c: c if c.startswith("Metadata_") else f"Metadata_{c}" for c in pm.columns})
    keys = [k for k in ("Metadata_Plate", "Metadata_Well") if k in pm.columns and k in df.columns]
    if "Metadata_Well" not in keys:
        raise ProfileError(f"{platemap}: needs a Well (or Metadata_Well) column matching the embeddings")
    pm = pm.astype({k: str for k in keys})
    left = df.astype({k: str for k in keys})
    clash = [c for c in pm.columns if c in left.columns and c not in keys]
    return left.drop(columns=clash).merge(pm, on=keys, how="left")


def profile_embeddings(path: str | os.PathLike[str], by: Sequence[str], control: str | None = None,
                       control_col: str | None = None, moa_col: str | None = None, platemap: str | None = None,
                       feature_prefix: str = "cls", plate_col: str = "Metadata_Plate", method: str = "standardize",
                       feature_select: bool = True, null_size: int = 10000, threshold: float = 0.05, seed: int = 0,
                       out_dir: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """Run the whole pipeline; writes ``profiles.parquet``, ``map_replicate.csv``, ``map_moa.csv``, ``summary.json``."""
    df = read_table(path)
    if platemap:
        df = join_platemap(df, platemap)
    by_cols = [resolve_column(df, b, "--by column") for b in by]
    ctrl_col = resolve_column(df, control_col, "--control-col") if control_col else by_cols[0]
    moa = resolve_column(df, moa_col, "--moa column") if moa_col else None
    feats = feature_columns(df, feature_prefix)
    wells = aggregate_profiles(df, feats)
    plate = plate_col if plate_col in wells.columns else None
    normed, kept = normalize_profiles(wells, feats, plate_col=plate, control_col=ctrl_col if control else None,
                                      control=control, method=method, feature_select=feature_select)
    res = map_scores(normed, by_cols, features=kept, control=control, control_col=ctrl_col, moa_col=moa,
                     null_size=null_size, threshold=threshold, seed=seed)
    out = Path(out_dir) if out_dir else Path(str(path).removesuffix(".parquet") + ".profile")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "profiles.parquet", lambda t: normed.to_parquet(t, index=False))
    write_atomic(out / "map_replicate.csv", lambda t: res.replicate.to_csv(t, index=False))
    if res.moa is not None:
        write_atomic(out / "map_moa.csv", lambda t: res.moa.to_csv(t, index=False))
    summary = {**res.summary, "n_wells": int(len(wells)), "n_features": len(feats), "n_features_kept": len(kept),
               "by": by_cols, "control": control, "method": method, "source": str(path)}
    write_atomic(out / "summary.json", lambda t: Path(t).write_text(json.dumps(summary, indent=2)))
    return out, summary
