"""Where a training step's time goes: torch.profiler over forward, backward and AdamW, by kind of op.

    python benchmarks/profile_train_step.py [--model chada_vit_moyen] [--mix 1,2,2,3,3,4,4,5] [--precision fp32,bf16]
    python benchmarks/profile_train_step.py --phase infer   # one inference forward (weights cast once, as embed)

Prints, per precision, the self CPU time of each category (matmuls, attention forward and backward,
layer norms, GELU, copies and dtype casts, zero fills, concatenation, optimiser, other) with its
share of the step, then the heaviest individual ops. CPU times are summed over threads; on a shared
machine compare shares and ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import chadavit.openmp  # noqa: F401  (before torch, as the chadavit command: OMP_WAIT_POLICY=PASSIVE)

sys.path.insert(0, str(Path(__file__).resolve().parent))

CATEGORIES = [  # (category, substrings of aten op names), first match wins
    ("attention backward", ("flash_attention_for_cpu_backward", "flash_attention_backward",
                            "efficient_attention_backward",
                            "_scaled_dot_product_attention_math_backward", "varlen")),
    ("attention forward", ("scaled_dot_product", "flash_attention", "efficient_attention")),
    ("matmul (linear, conv)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear",
                               "convolution")),
    ("layer norm", ("layer_norm",)),
    ("GELU / ReLU", ("gelu", "relu", "threshold")),
    ("copies and dtype casts", ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous")),
    ("zero fills", ("aten::fill_", "aten::zero_", "aten::zeros")),
    ("cat / index / split", ("aten::cat", "aten::index", "aten::split", "aten::stack", "aten::select_backward",
                             "aten::slice_backward")),
    ("optimiser (AdamW)", ("_foreach", "addcdiv", "addcmul", "lerp", "aten::sqrt", "aten::mul_", "aten::div")),
    ("sums, adds (residuals, grads)", ("aten::add", "aten::sum", "aten::mul")),
]


def categorise(name: str) -> str:
    for cat, keys in CATEGORIES:
        if any(k in name for k in keys):
            return cat
    return "other"


def profile_step(model_name: str, mix: list[int], size: int, precision: str, threads: int, phase: str = "train"
                 ) -> None:
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from chadavit import ChannelBatch, create_model
    from chadavit.precision import prepare_inference, train_autocast

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name, img_size=size).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rng = np.random.default_rng(0)
    batch = ChannelBatch.from_images([rng.integers(0, 4096, (c, size, size)).astype(np.uint16) for c in mix])
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def train_step() -> None:
        with train_autocast(dtype, "cpu"):
            cls = model(batch).cls
        cls.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer_step() -> None:
        with torch.inference_mode():
            model(batch)

    if phase == "infer":
        prepare_inference(model.eval(), dtype)
    step = infer_step if phase == "infer" else train_step

    step()  # warm-up (allocations, optimiser state)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    by_cat: dict[str, float] = defaultdict(float)
    for e in events:
        by_cat[categorise(e.key)] += e.self_cpu_time_total / 1e6
    total = sum(by_cat.values())
    print(f"\n{model_name} {size}px, channels {mix}, {precision} {phase}: {total:.2f} s self CPU time in aten ops")
    for cat, t in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"  {cat:32s} {t:7.2f} s  {100 * t / total:5.1f} %")
    print("  heaviest ops:")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
        print(f"    {e.key[:60]:60s} {e.self_cpu_time_total / 1e6:6.2f} s  x{e.count}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="chada_vit_moyen")
    ap.add_argument("--mix", default="1,2,2,3,3,4,4,5")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phase", choices=("train", "infer"), default="train")
    args = ap.parse_args()
    for p in args.precision.split(","):
        profile_step(args.model, [int(c) for c in args.mix.split(",")], args.size, p, args.threads, args.phase)


if __name__ == "__main__":
    main()
