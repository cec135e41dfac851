"""Statistics and figures of a built IDR dataset (the paper's Figure 6 and the channel-count histogram)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def dataset_stats(path: str | Path) -> dict[str, Any]:
    """Images, channels, per-study counts, channel-count histogram and imaging-method distribution."""
    from chadavit.data.dataset import open_dataset

    m = open_dataset(path).manifest
    study = m["study"] if "study" in m.columns else m["source"]
    return {
        "images": int(len(m)),
        "channels": int(m["n_channels"].sum()) if len(m) else 0,
        "studies": int(study.nunique()),
        "per_study": study.value_counts().sort_index().to_dict(),
        "channel_hist": m["n_channels"].value_counts().sort_index().astype(int).to_dict(),
        "imaging_methods": m["imaging_method"].replace("", "unknown").value_counts().to_dict(),
        "pixel_sources": m["pixel_source"].value_counts().to_dict() if "pixel_source" in m.columns else {},
        "min_channels": int(m["n_channels"].min()) if len(m) else 0,
        "max_channels": int(m["n_channels"].max()) if len(m) else 0,
    }


def draw_figures(stats: dict[str, Any], figdir: str | Path) -> list[Path]:
    """Write ``imaging_methods.png`` (images per imaging method) and ``channel_counts.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(figdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    methods = pd.Series(stats["imaging_methods"], dtype=float).sort_values()
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(methods), 2) + 1.2))
    ax.barh(range(len(methods)), methods.values, color="#4c72b0")
    ax.set_yticks(range(len(methods)), [str(k) for k in methods.index])
    total = methods.sum() or 1
    for y, v in enumerate(methods.values):
        ax.text(v, y, f" {int(v):,} ({100 * v / total:.1f}%)", va="center", fontsize=8)
    ax.set_xlabel("images")
    ax.set_title(f"Imaging methods ({stats['images']:,} images, {stats['studies']} studies)")
    ax.set_xlim(0, methods.max() * 1.35 if len(methods) else 1)
    fig.tight_layout()
    p = out / "imaging_methods.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)

    hist = pd.Series(stats["channel_hist"], dtype=float).sort_index()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(hist)), hist.values, color="#55a868")
    ax.set_xticks(range(len(hist)), [str(k) for k in hist.index])
    ax.set_xlabel("channels per image")
    ax.set_ylabel("images")
    ax.set_title(f"Channel counts ({stats['channels']:,} channels)")
    fig.tight_layout()
    p = out / "channel_counts.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)
    return paths


def format_stats(stats: dict[str, Any]) -> str:
    lines = [f"images: {stats['images']:,}", f"channels: {stats['channels']:,} "
             f"({stats['min_channels']} to {stats['max_channels']} per image)", f"studies: {stats['studies']}",
             "per study:"]
    lines += [f"  {k}: {v:,}" for k, v in stats["per_study"].items()]
    lines.append("channel-count histogram:")
    lines += [f"  {k} channel(s): {v:,}" for k, v in stats["channel_hist"].items()]
    lines.append("imaging methods:")
    lines += [f"  {k}: {v:,}" for k, v in stats["imaging_methods"].items()]
    if stats.get("pixel_sources"):
        lines.append("pixel sources: " + ", ".join(f"{k} {v:,}" for k, v in stats["pixel_sources"].items()))
    return "\n".join(lines)
