"""Packed (no padding) vs padding every image to 10 channels, for `chada_vit_moyen` at 224 px.

Channel counts are drawn from a mix like IDRCell100k's (1 to 10 channels, mean about 3). Prints
images per second for inference (forward) and training (forward + backward) and the peak resident
memory of each run; every (mode, phase) runs in its own subprocess so peaks do not mix.

    python benchmarks/bench_packed_vs_padded.py [--batch 8] [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

# IDRCell100k: 104,093 images with 308,898 channels (mean 2.97), 1 to 10 channels per image
CHANNEL_MIX = [0.25, 0.20, 0.25, 0.15, 0.06, 0.03, 0.02, 0.02, 0.01, 0.01]


def make_batches(n_batches: int, batch_size: int, size: int, seed: int = 0):  # noqa: ANN201
    import numpy as np

    from chadavit import ChannelBatch

    rng = np.random.default_rng(seed)
    n = n_batches * batch_size
    # channel counts in IDRCell100k's proportions (largest remainder), shuffled across batches
    quota = np.floor(np.array(CHANNEL_MIX) * n).astype(int)
    quota[np.argsort(-(np.array(CHANNEL_MIX) * n - quota))[: n - quota.sum()]] += 1
    counts = rng.permutation(np.repeat(np.arange(1, 11), quota))
    batches = []
    for b in range(n_batches):
        images = [rng.integers(0, 4096, (int(c), size, size)).astype(np.uint16)
                  for c in counts[b * batch_size : (b + 1) * batch_size]]
        batches.append(ChannelBatch.from_images(images))
    return batches


def worker(mode: str, phase: str, batch_size: int, steps: int, threads: int, model_name: str, size: int) -> dict:
    import torch

    from chadavit import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name)
    model.train(phase == "train")
    batches = make_batches(steps + 1, batch_size, size)
    pad = 10 if mode == "padded10" else None
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        if phase == "train":
            out = model(batch, pad_to_slots=pad)
            out.cls.float().pow(2).mean().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                model(batch, pad_to_slots=pad)
        if i > 0:  # the first batch is a warm-up
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    channels = sum(int(b.num_channels.sum()) for b in batches[1:])
    return {"mode": mode, "phase": phase, "images_per_s": batch_size * len(times) / sum(times),
            "s_per_batch": sum(times) / len(times), "mean_channels": channels / (batch_size * len(times)),
            "peak_rss_mib": peak / 1024, "rss_growth_mib": (peak - base_rss) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="chada_vit_moyen")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "PHASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.batch, args.steps, args.threads, args.model, args.size)))
        return
    results = {}
    for phase in ("infer", "train"):
        for mode in ("packed", "padded10"):
            cmd = [sys.executable, __file__, "--worker", mode, phase, "--batch", str(args.batch), "--steps",
                   str(args.steps), "--threads", str(args.threads), "--model", args.model, "--size", str(args.size)]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            results[(mode, phase)] = res
            print(f"{args.model} {args.size}px {phase:5s} {mode:8s}: {res['images_per_s']:7.2f} img/s "
                  f"({res['s_per_batch']:.2f} s per batch of {args.batch}, mean {res['mean_channels']:.2f} channels), "
                  f"peak RSS {res['peak_rss_mib']:.0f} MiB (+{res['rss_growth_mib']:.0f} MiB during the run)", flush=True)
    for phase in ("infer", "train"):
        speedup = results[("packed", phase)]["images_per_s"] / results[("padded10", phase)]["images_per_s"]
        mem = results[("padded10", phase)]["rss_growth_mib"] / max(results[("packed", phase)]["rss_growth_mib"], 1)
        print(f"{phase}: packed is {speedup:.1f}x faster than padding to 10 channels, {mem:.1f}x less memory growth")


if __name__ == "__main__":
    main()
