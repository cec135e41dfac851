"""Eager vs ``torch.compile(dynamic=True)`` for packed inference on CPU: compile time, recompiles, CPU time per batch.

    python benchmarks/bench_compile.py [--model chada_vit_nano] [--size 64]

Two batches share a channel mix, a third has another one (new sequence lengths); timed calls alternate
eager and compiled, best and median CPU-seconds of 5.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="chada_vit_nano")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from chadavit import ChannelBatch, create_model

    torch.set_num_threads(args.threads)
    model = create_model(args.model, depth=args.depth, img_size=args.size).eval()
    rng = np.random.default_rng(0)

    def batch(mix: list[int]) -> ChannelBatch:
        return ChannelBatch.from_images([rng.integers(0, 4096, (c, args.size, args.size)).astype(np.uint16)
                                         for c in mix])

    batches = [batch([1, 2, 2, 3, 3, 4, 4, 5]) for _ in range(2)] + [batch([3, 3, 1, 4, 2, 2, 5, 1])]
    compiled = torch.compile(model, dynamic=True)
    t = time.perf_counter()
    with torch.inference_mode():
        ref = model(batches[0]).cls
        diff = (compiled(batches[0]).cls - ref).abs().max().item()
        print(f"first compiled call {time.perf_counter() - t:.0f} s, max |compiled - eager| {diff:.1e}", flush=True)
        t = time.perf_counter()
        compiled(batches[2])
        print(f"another channel mix: {time.perf_counter() - t:.0f} s", flush=True)
        res: dict[str, list[float]] = {"eager": [], "compiled": []}
        for r in range(5):
            for name, fn in (("eager", model), ("compiled", compiled)):
                c = time.process_time()
                fn(batches[r % 3])
                res[name].append(time.process_time() - c)
    for name, v in res.items():
        print(f"{name}: CPU-seconds per batch best {min(v):.3f}, median {sorted(v)[2]:.3f}")


if __name__ == "__main__":
    main()
