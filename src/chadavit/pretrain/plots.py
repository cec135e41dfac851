"""The loss-curve figure written next to a run's metrics."""

from __future__ import annotations

import os
from pathlib import Path


def plot_loss(metrics_path: Path, out_png: Path) -> None:
    """Plot ``loss`` against ``step`` from ``metrics.jsonl`` into ``out_png`` (atomically; nothing if no losses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chadavit.pretrain.metrics_log import read_metrics

    recs = [r for r in read_metrics(metrics_path) if r.get("loss") is not None]  # a torn last line is skipped
    if not recs:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in recs], [r["loss"] for r in recs], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("DINO loss")
    ax.set_title("pretraining loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
