"""Throughput of ``chadavit embed`` on CPU (or GPU): images per second, end to end and model only.

Writes synthetic multi-channel fields (one uint16 TIFF per channel, a plate-like file pattern) to a
temporary folder, then embeds them with a randomly initialised preset (throughput does not depend
on the weights). Also reports the peak resident memory, which must not grow with the number of
images (``--images 10000 --model random:chada_vit_nano --size 64`` checks streaming at scale).

    python benchmarks/bench_embed.py                       # chada_vit_moyen, 224 px, 3 channels, 64 images
    python benchmarks/bench_embed.py --images 10000 --model random:chada_vit_nano --size 64 --skip-model-only
    python benchmarks/bench_embed.py --precisions fp32,auto  # (default) both precisions, same process

Model-only lines also print useful GFLOP/s (analytic FLOPs of the real tokens, ``utilisation.py``)
next to the fp32 / bf16 matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import chadavit.openmp  # noqa: F401  (before torch, as the chadavit command: OMP_WAIT_POLICY=PASSIVE)
import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_fields(root: Path, n: int, size: int, channels: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(100, 4000, (channels, size, size), dtype=np.uint16)
    for i in range(n):
        well = f"{chr(ord('A') + (i // 24) % 16)}{i % 24 + 1:02d}"
        for c in range(channels):
            plane = np.roll(base[c], shift=(i * 7) % size, axis=0)  # cheap, distinct fields
            tifffile.imwrite(root / f"P{i // 384:03d}_{well}_s{i:05d}_w{c + 1}.tif", plane)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="random:chada_vit_moyen")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=224, help="field size in pixels (= model input: one crop per field)")
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--skip-model-only", action="store_true")
    ap.add_argument("--precisions", default="fp32,auto", help="comma-separated --precision values to compare")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from chadavit.embed import EmbedConfig, load_model, pick_device, run_embed

    device = pick_device(args.device)
    model = load_model(args.model).eval().to(device)
    cpu = f"{os.cpu_count()} logical CPUs ({platform.processor() or platform.machine()})"
    mc = model.config
    print(f"model {args.model}: D={mc.embed_dim}, depth={mc.depth}, img_size={mc.img_size}"
          f" | device {device} | {cpu} | torch {torch.__version__}, {torch.get_num_threads()} threads"
          f" | OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}")

    from utilisation import config_forward_flops, peaks

    from chadavit.precision import precision_name, prepare_inference, resolve_precision

    pk = peaks(device)
    print(f"matmul peak (4096x768 @ 768x2048): fp32 {pk['fp32']:.0f} GFLOP/s, bf16 {pk['bf16']:.0f} GFLOP/s")
    precisions = args.precisions.split(",")
    if not args.skip_model_only:
        from chadavit import ChannelBatch

        x = [np.random.default_rng(0).integers(0, 4000, (args.channels, model.config.img_size, model.config.img_size),
                                               dtype=np.uint16) for _ in range(args.batch_size)]
        batch = ChannelBatch.from_images(x).to(device)
        flops = config_forward_flops(mc, [args.channels] * args.batch_size)
        for prec in precisions:
            dtype = resolve_precision(prec, device)
            m = prepare_inference(copy.deepcopy(model), dtype)
            with torch.inference_mode():
                m(batch)  # warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t, c = time.perf_counter(), time.process_time()
                reps = 3
                for _ in range(reps):
                    m(batch)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt, dc = time.perf_counter() - t, time.process_time() - c
            gf = reps * flops / dt / 1e9
            name = precision_name(dtype)
            print(f"model only, --precision {prec} ({name}): {reps * args.batch_size / dt:.2f} images/s "
                  f"({args.channels} channels x {model.config.img_size} px, batch {args.batch_size}); "
                  f"{dc / (reps * args.batch_size):.2f} CPU-seconds per image; {gf:.1f} useful GFLOP/s = "
                  f"{100 * gf / pk[name]:.0f} % of the {name} peak; load average {os.getloadavg()[0]:.1f}",
                  flush=True)

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fields"
        root.mkdir()
        t = time.perf_counter()
        write_fields(root, args.images, args.size, args.channels)
        print(f"wrote {args.images} fields x {args.channels} TIFFs in {time.perf_counter() - t:.1f} s")
        for prec in precisions:
            cfg = EmbedConfig(input=str(root), out=str(Path(tmp) / f"emb_{prec}.parquet"), model=args.model,
                              pattern="{plate}_{well}_s{site}_{channel}.tif", crops="grid",
                              crop_size=model.config.img_size, batch_size=args.batch_size, workers=args.workers,
                              device=args.device, precision=prec, progress=False, part_size=256)
            c = time.process_time()
            res = run_embed(cfg, model=model)
            dc = time.process_time() - c
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rates[prec] = res.images_per_second
            print(f"end to end, --precision {prec} (read TIFFs, normalise, crop, embed, write Parquet): "
                  f"{res.n_computed} images, {res.n_crops} crops in {res.seconds:.1f} s = "
                  f"{res.images_per_second:.2f} images/s; {dc / max(res.n_computed, 1):.3f} CPU-seconds per image; "
                  f"peak RSS so far {rss_mb:.0f} MB; load average {os.getloadavg()[0]:.1f}", flush=True)
    if "fp32" in rates:
        for prec, r in rates.items():
            if prec != "fp32":
                print(f"end to end: --precision {prec} is {r / rates['fp32']:.2f}x the fp32 images/s")


if __name__ == "__main__":
    main()
