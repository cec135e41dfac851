"""Pretraining as the commands run it: the trainer, then the learning check on the backbone it returns.

Why here: the check is an evaluation (kNN on frozen embeddings) and pretraining never imports evaluation,
so the orchestration layer runs one after the other. The check's numbers join the run's ``summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def pretrain(cfg: Any) -> dict[str, Any]:
    """``train(cfg)``, then (main process, ``check.enabled``) the learning check, recorded in ``summary.json``.

    A finished run re-run keeps the check it already recorded; the summary of a run that stopped early
    (signal, collapse) is checked too, since its backbone is what the user gets.
    """
    from chadavit.pretrain.trainer import train

    summary = train(cfg)
    if not cfg.check.enabled or "backbone" not in summary or "knn_trained" in summary:
        return summary
    from chadavit.evaluation.learning_check import run_learning_check
    from chadavit.pretrain.report import write_summary

    backbone = summary["_teacher"].backbone
    t0 = time.perf_counter()
    summary.update(run_learning_check(cfg.check, backbone, cfg.train.seed, summary["normalization"],
                                      next(backbone.parameters()).device))
    summary["check_s"] = round(time.perf_counter() - t0, 1)
    write_summary(summary, Path(summary["out_dir"]) / "summary.json")
    return summary
