"""Ours (packed, fp32 and bf16) vs the official code's layout, `chada_vit_moyen` at 224 px, in one process.

Variants run interleaved, step after step, in one process, so a busy shared CPU slows them alike;
ratios are of medians. For each phase (``infer``: forward; ``train``: forward, backward, AdamW step)
it prints images/s, CPU-seconds per image, useful GFLOP/s (analytic FLOPs of the real tokens, see
``utilisation.py``) and that figure as a share of the matmul peak measured in the same run.

Variants: ``official`` (the official forward re-written in ``official_reference.py``: padded to 10
channel slots, ``nn.MultiheadAttention`` with a key-padding mask), ``padded10`` (our model on the
official layout), ``ours`` (packed tokens). Each with ``-fp32`` or ``-bf16`` (bf16: weights cast
once for inference, autocast for training; official: fp32 only, as it was trained).

The process's allocator is set as ``chadavit pretrain`` sets it (``keep_freed_memory``: glibc keeps freed
memory instead of unmapping it), for every variant alike; ``--default-malloc`` leaves glibc's default.

    python benchmarks/bench_packed_vs_padded.py [--mix 1,2,2,3,3,4,4,5] [--steps 3] [--threads 2]
    python benchmarks/bench_packed_vs_padded.py --idr-mix --batch 8   # channel counts drawn like IDRCell100k
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import chadavit.openmp  # noqa: F401  (before torch, as the chadavit command: OMP_WAIT_POLICY=PASSIVE)

sys.path.insert(0, str(Path(__file__).resolve().parent))

# IDRCell100k: 104,093 images with 308,898 channels (mean 2.97), 1 to 10 channels per image
CHANNEL_MIX = [0.25, 0.20, 0.25, 0.15, 0.06, 0.03, 0.02, 0.02, 0.01, 0.01]
DEFAULT_MIX = "1,2,2,3,3,4,4,5"  # the mix of issue 15


def idr_counts(n: int, seed: int = 0) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(seed)
    quota = np.floor(np.array(CHANNEL_MIX) * n).astype(int)
    quota[np.argsort(-(np.array(CHANNEL_MIX) * n - quota))[: n - quota.sum()]] += 1
    return [int(c) for c in rng.permutation(np.repeat(np.arange(1, 11), quota))]


def make_batches(counts_per_batch: list[list[int]], size: int, seed: int = 0):  # noqa: ANN201
    import numpy as np

    from chadavit import ChannelBatch

    rng = np.random.default_rng(seed)
    return [ChannelBatch.from_images([rng.integers(0, 4096, (c, size, size)).astype(np.uint16) for c in counts])
            for counts in counts_per_batch]


class Variant:
    """One way of running the model: a step function for a phase, on a batch."""

    def __init__(self, name: str, phase: str, model_name: str, size: int) -> None:
        import torch

        from chadavit import create_model
        from chadavit.precision import prepare_inference, train_autocast

        self.name, self.phase = name, phase
        kind, prec = name.rsplit("-", 1)
        self.dtype = torch.bfloat16 if prec == "bf16" else torch.float32
        torch.manual_seed(0)
        base = create_model(model_name, img_size=size)
        self.config = base.config
        if kind == "official":
            from official_reference import OfficialChAdaViT

            c = base.config
            model = OfficialChAdaViT(c.embed_dim, c.depth, c.num_heads, c.mlp_dim, c.patch_size, size, 10)
            self.forward = lambda b: model(b.planes, b.num_channels.tolist())
        else:
            model = base
            pad = 10 if kind == "padded10" else None
            self.forward = lambda b: model(b, pad_to_slots=pad).cls
        if phase == "infer":
            model.eval()
            if self.dtype == torch.bfloat16:
                model = prepare_inference(copy.deepcopy(model), self.dtype)
                if kind != "official":
                    self.forward = lambda b: model(b, pad_to_slots=10 if kind == "padded10" else None).cls
        else:
            model.train()
            self.opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        self.model, self.autocast = model, lambda: train_autocast(self.dtype, "cpu")

    def step(self, batch) -> None:  # noqa: ANN001
        import torch

        if self.phase == "infer":
            with torch.inference_mode():
                self.forward(batch)
            return
        with self.autocast():
            cls = self.forward(batch)
        cls.float().pow(2).mean().backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mix", default=DEFAULT_MIX, help="channel counts of one batch (default %(default)s)")
    ap.add_argument("--idr-mix", action="store_true", help="draw channel counts in IDRCell100k proportions")
    ap.add_argument("--batch", type=int, default=8, help="images per batch with --idr-mix")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="chada_vit_moyen")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--phases", default="infer,train")
    ap.add_argument("--variants", default="official-fp32,ours-fp32,ours-bf16",
                    help="comma-separated: official-fp32, padded10-fp32, padded10-bf16, ours-fp32, ours-bf16")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's allocator at its defaults")
    args = ap.parse_args()

    import torch
    from utilisation import config_forward_flops, peaks

    from chadavit.pretrain.runtime import keep_freed_memory

    torch.set_num_threads(args.threads)
    tuned = False if args.default_malloc else keep_freed_memory(torch.device("cpu"))
    if args.idr_mix:
        counts = idr_counts((args.steps + 1) * args.batch)
        per_batch = [counts[i * args.batch:(i + 1) * args.batch] for i in range(args.steps + 1)]
    else:
        per_batch = [[int(c) for c in args.mix.split(",")]] * (args.steps + 1)
    batches = make_batches(per_batch, args.size)
    pk = peaks()
    print(f"{args.model} {args.size}px, {args.threads} threads, torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.1f}, "
          f"malloc {'keeps freed memory' if tuned else 'glibc default'}, "
          f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(f"matmul peak (4096x768 @ 768x2048): fp32 {pk['fp32']:.0f} GFLOP/s, bf16 {pk['bf16']:.0f} GFLOP/s")
    for phase in args.phases.split(","):
        variants = [Variant(v, phase, args.model, args.size) for v in args.variants.split(",")]
        wall: dict[str, list[float]] = {v.name: [] for v in variants}
        cpu: dict[str, list[float]] = {v.name: [] for v in variants}
        for i, batch in enumerate(batches):
            for v in variants:
                t, c = time.perf_counter(), time.process_time()
                v.step(batch)
                if i > 0:  # the first batch is a warm-up
                    wall[v.name].append(time.perf_counter() - t)
                    cpu[v.name].append(time.process_time() - c)
        n_img = len(batches[1])
        mult = 3.0 if phase == "train" else 1.0
        flops = mult * statistics.mean(config_forward_flops(variants[0].config, b.num_channels.tolist(), args.size)
                                       for b in batches[1:])
        med = {k: statistics.median(x) for k, x in wall.items()}
        for v in variants:
            gf = flops / med[v.name] / 1e9
            peak = pk["bf16" if v.dtype == torch.bfloat16 else "fp32"]
            print(f"{phase:5s} {v.name:14s}: {n_img / med[v.name]:6.2f} img/s, "
                  f"{statistics.median(cpu[v.name]) / n_img:6.2f} CPU-s/img, {gf:6.1f} useful GFLOP/s "
                  f"= {100 * gf / peak:4.0f} % of the {'bf16' if v.dtype == torch.bfloat16 else 'fp32'} peak",
                  flush=True)
        for ref in ("official-fp32", "ours-fp32"):
            if ref in med:
                rest = [f"{k} {med[ref] / t:.1f}x" for k, t in med.items() if k != ref]
                print(f"{phase}: speed-up vs {ref} (median wall time): " + ", ".join(rest))
    end = peaks()
    print(f"matmul peak at the end: fp32 {end['fp32']:.0f} GFLOP/s, bf16 {end['bf16']:.0f} GFLOP/s "
          f"(shares above use the start's peak); load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
