"""Feature groups side by side: learned (``cls_``), CellProfiler (``cp_``), hybrid (both, each block weighted
equally), and the optional last step of the profiling workflow (PCA or sphering).

Hybrid: after each block is normalised and feature-selected on its own, each block is scaled so that its profiles
have a mean squared norm of 1, so both blocks weigh the same in a distance whatever their widths (1,215
CellProfiler features against 192 learned ones) and whatever tails mad_robustize left (a feature with a tiny MAD
would otherwise drown the other block).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from chadavit.profiling.prepare import ProfileError

GROUP_PREFIXES = {"learned": "cls", "cellprofiler": "cp"}
GROUPS = ("learned", "cellprofiler", "hybrid")
TRANSFORMS = ("none", "pca", "spherize")


def group_prefix(group: str) -> str:
    """``learned`` -> ``cls``, ``cellprofiler`` -> ``cp``; any other name is a column prefix as given."""
    return GROUP_PREFIXES.get(group, group)


def available_groups(df: pd.DataFrame) -> list[str]:
    """The groups the table has columns for, plus ``hybrid`` when it has both."""
    have = [g for g, p in GROUP_PREFIXES.items() if any(c.startswith(f"{p}_") for c in df.columns)]
    return have + (["hybrid"] if len(have) == 2 else [])


def parse_groups(spec: str, df: pd.DataFrame) -> list[str]:
    """``auto`` (every group the table has), or a comma list of groups / column prefixes."""
    if spec == "auto":
        groups = available_groups(df)
        if not groups:
            raise ProfileError("no learned (cls_) or CellProfiler (cp_) columns; name a prefix with --features")
        return groups
    return [s.strip() for s in spec.split(",") if s.strip()]


def blocklisted(features: Sequence[str]) -> list[str]:
    """CellProfiler features on pycytominer's default blocklist (known-noisy; Way 2019), matched without ``cp_``."""
    from importlib.resources import files

    try:
        text = (files("pycytominer") / "data" / "blocklist_features.txt").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return []
    block = {line.strip() for line in text.splitlines()[1:] if line.strip()}
    return [f for f in features if f.removeprefix("cp_") in block]


def transform(df: pd.DataFrame, features: Sequence[str], how: str, control_mask: np.ndarray | None = None,
              seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """``pca``: principal components keeping 99 % of the variance (``pca_<j>``); ``spherize``: ZCA whitening fitted
    on the controls (all profiles without controls), as pycytominer's spherize; ``none``: unchanged."""
    if how == "none":
        return df, list(features)
    if how not in TRANSFORMS:
        raise ProfileError(f"transform must be one of {', '.join(TRANSFORMS)}, got {how!r}")
    x = df[list(features)].to_numpy(np.float64)
    meta = df.drop(columns=list(features)).reset_index(drop=True)
    if how == "pca":
        from sklearn.decomposition import PCA

        n = min(x.shape) - 1
        if n < 1:
            raise ProfileError("PCA needs at least 2 profiles and 2 features")
        z = PCA(n_components=min(n, 0.99) if n > 1 else 1, svd_solver="full", random_state=seed).fit_transform(x)
        names = [f"pca_{j}" for j in range(z.shape[1])]
    else:
        fit = x[control_mask] if control_mask is not None and control_mask.sum() > 1 else x
        mu = fit.mean(0)
        u, s, vt = np.linalg.svd(fit - mu, full_matrices=False)
        eps = 1e-6 * max(float(s.max(initial=0.0)), 1e-12)
        w = vt.T @ np.diag(np.sqrt(max(len(fit) - 1, 1)) / (s + eps)) @ vt  # ZCA: cov(fit) -> identity
        z = (x - mu) @ w
        names = list(features)
    return pd.concat([meta, pd.DataFrame(z, columns=names)], axis=1), names


def hybrid(blocks: Sequence[tuple[pd.DataFrame, list[str]]]) -> tuple[pd.DataFrame, list[str]]:
    """Concatenate normalised blocks (same rows, same order), each scaled to a mean squared profile norm of 1, so
    each block weighs the same in a distance whatever its width and the tails its normalisation left."""
    base, _ = blocks[0]
    meta = base[[c for c in base.columns if c.startswith("Metadata_")]].reset_index(drop=True)
    parts, names = [meta], []
    for df, feats in blocks:
        x = df[feats].reset_index(drop=True)
        norm = float(np.sqrt((x.to_numpy(np.float64) ** 2).sum(1).mean()))  # mean squared profile norm -> 1
        parts.append(x / (norm if norm > 0 else 1.0))
        names += feats
    return pd.concat(parts, axis=1), names


def plot_groups(table: pd.DataFrame, path: Path) -> Path:
    """Bar chart of mAP per feature group (replicate, and MoA when present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in ("replicate_map", "moa_map") if c in table.columns]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(table), 3.2))
    width = 0.8 / len(cols)
    for i, c in enumerate(cols):
        ax.bar(np.arange(len(table)) + i * width, table[c], width, label=c.replace("_map", " mAP"))
    ax.set_xticks(np.arange(len(table)) + width * (len(cols) - 1) / 2, table["group"])
    ax.set_ylabel("mAP")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
