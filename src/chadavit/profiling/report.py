"""The ``chadavit profile`` pipeline on a file: read, join a plate map, aggregate, normalise, score, write."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from chadavit.atomic import write_atomic
from chadavit.profiling.groups import group_prefix, hybrid, parse_groups, plot_groups, transform
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


def _block(wells: pd.DataFrame, prefix: str, norm: dict[str, Any]) -> tuple[pd.DataFrame, list[str], int]:
    """One feature group's well profiles: normalised and selected; NaN left after that (a cell's undefined
    measurement in every cell of a well) set to 0, the controls' centre after normalisation, and counted."""
    feats = feature_columns(wells, prefix)
    meta = [c for c in wells.columns if c.startswith("Metadata_")]
    normed, kept = normalize_profiles(wells[meta + feats], feats, **norm)
    values = normed[kept]
    n_nan = int(values.isna().to_numpy().sum())
    normed[kept] = values.fillna(0.0)
    return normed.reset_index(drop=True), kept, n_nan


def _group_profiles(wells: pd.DataFrame, group: str, norm: dict[str, Any]) -> tuple[pd.DataFrame, list[str], int]:
    if group != "hybrid":
        return _block(wells, group_prefix(group), norm)
    blocks = [_block(wells, group_prefix(g), norm) for g in ("learned", "cellprofiler")]
    prof, feats = hybrid([(b[0], b[1]) for b in blocks])
    return prof, feats, sum(b[2] for b in blocks)


def profile_embeddings(path: str | os.PathLike[str], by: Sequence[str], control: str | None = None,
                       control_col: str | None = None, moa_col: str | None = None, platemap: str | None = None,
                       feature_prefix: str = "auto", plate_col: str = "Metadata_Plate", method: str = "mad_robustize",
                       feature_select: bool = True, null_size: int = 10000, threshold: float = 0.05, seed: int = 0,
                       out_dir: str | os.PathLike[str] | None = None, aggregate: str = "well",
                       transform_method: str = "none") -> tuple[Path, dict[str, Any]]:
    """Run the workflow for each feature group (``feature_prefix``: ``auto`` = learned, CellProfiler and hybrid as
    the table has them, or a comma list of groups / prefixes) side by side.

    Writes ``<group>/profiles.parquet``, ``<group>/map_replicate.csv``, ``<group>/map_moa.csv``, ``groups.csv``
    (one row per group), ``map_by_group.png`` and ``summary.json`` (the first group's numbers at the top level,
    every group's under ``groups``). ``aggregate``: ``well`` (median per plate and well) or ``image``.
    """
    df = read_table(path)
    if platemap:
        df = join_platemap(df, platemap)
    by_cols = [resolve_column(df, b, "--by column") for b in by]
    ctrl_col = resolve_column(df, control_col, "--control-col") if control_col else by_cols[0]
    moa = resolve_column(df, moa_col, "--moa column") if moa_col else None
    groups = parse_groups(feature_prefix, df)
    prefixes = dict.fromkeys(group_prefix(g) for g in groups for g in (("learned", "cellprofiler")
                                                                         if g == "hybrid" else (g,)))
    feats = [c for p in prefixes for c in feature_columns(df, p)]
    if aggregate not in ("well", "image"):
        raise ProfileError(f"aggregate must be well or image, got {aggregate!r}")
    wells = aggregate_profiles(df, feats, keys=["Metadata_ImageId"] if aggregate == "image" else None)
    plate = plate_col if plate_col in wells.columns else None
    norm = dict(plate_col=plate, control_col=ctrl_col if control else None, control=control, method=method,
                feature_select=feature_select)
    is_ctrl = (wells[ctrl_col].astype(str) == str(control)).to_numpy() if control else None
    out = Path(out_dir) if out_dir else Path(str(path).removesuffix(".parquet") + ".profile")
    out.mkdir(parents=True, exist_ok=True)
    per_group: dict[str, dict[str, Any]] = {}
    for g in groups:
        prof, kept, n_nan = _group_profiles(wells, g, norm)
        prof, kept = transform(prof, kept, transform_method, is_ctrl, seed)
        res = map_scores(prof, by_cols, features=kept, control=control, control_col=ctrl_col, moa_col=moa,
                         null_size=null_size, threshold=threshold, seed=seed)
        gdir = out / g
        gdir.mkdir(exist_ok=True)
        write_atomic(gdir / "profiles.parquet", lambda t, p=prof: p.to_parquet(t, index=False))
        write_atomic(gdir / "map_replicate.csv", lambda t, r=res: r.replicate.to_csv(t, index=False))
        if res.moa is not None:
            write_atomic(gdir / "map_moa.csv", lambda t, r=res: r.moa.to_csv(t, index=False))
        per_group[g] = {**res.summary, "n_features": len(feature_columns(wells, group_prefix(g)))
                        if g != "hybrid" else None, "n_features_kept": len(kept), "n_nan_set_to_0": n_nan}
    table = pd.DataFrame([{"group": g, **{k: v for k, v in s.items() if k.endswith(("_map", "_retrieved",
                                                                                    "_groups", "_kept"))}}
                          for g, s in per_group.items()])
    write_atomic(out / "groups.csv", lambda t: table.to_csv(t, index=False))
    plot_groups(table, out / "map_by_group.png")
    first = per_group[groups[0]]
    summary = {**first, "n_wells": int(len(wells)), "n_features": len(feats), "groups": per_group, "by": by_cols,
               "control": control, "method": method, "transform": transform_method, "aggregate": aggregate,
               "source": str(path)}
    write_atomic(out / "summary.json", lambda t: Path(t).write_text(json.dumps(summary, indent=2)))
    return out, summary
