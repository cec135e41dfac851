"""Cost of the collapse signals (computed at logging steps only) against one training step of the demo preset.

Usage: python benchmarks/bench_monitor.py [--steps 6]
Prints the milliseconds of ``collapse_metrics`` on the demo's output shapes and of a full demo training step,
both measured in this process, and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from chadavit.pretrain.config import load_config
from chadavit.pretrain.monitor import collapse_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="training steps timed (after one warm-up step)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config("demo")
    b, k, d = cfg.data.batch_size, cfg.dino.out_dim, 64
    n_views = 2 + cfg.augment.n_local
    s_out, t_out, cls = torch.randn(n_views * b, k), torch.randn(2 * b, k), torch.randn(2 * b, d)
    center = torch.zeros(1, k)
    collapse_metrics(s_out, t_out, cls, center, 0.04, 0.1)
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        collapse_metrics(s_out, t_out, cls, center, 0.04, 0.1)
    metrics_ms = (time.perf_counter() - t0) / reps * 1e3

    from chadavit.pretrain.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        over = [f"train.out_dir={tmp}", f"train.max_steps={args.steps + 1}", "train.log_every=1000000",
                "train.progress=false", "check.enabled=false", "data.loader_benchmark_steps=0", "train.threads=1"]
        s = train(load_config("demo", over))
        step_ms = 1e3 * b / s["train_img_s"]
    print(f"collapse_metrics (batch {b}, {n_views} views, out_dim {k}): {metrics_ms:.2f} ms")
    print(f"demo training step (batch {b}, 1 thread): {step_ms:.1f} ms")
    print(f"overhead at a logging step: {100 * metrics_ms / step_ms:.2f}%; every {cfg.train.log_every} steps: "
          f"{100 * metrics_ms / step_ms / cfg.train.log_every:.3f}%")


if __name__ == "__main__":
    main()
