"""Sharded embedding on one machine: images/s with 1 and 2 CPU processes (torchrun), and the cost of ``embed merge``.

Part 1 writes synthetic fields (one uint16 TIFF per channel) and embeds them with
``torchrun --nproc-per-node P -m chadavit embed`` for each P of ``--procs`` (P = 1 is a plain
single-process run), the cores split evenly between the processes (``--threads``). It prints the
wall-clock images/s of the whole command (process start, model load, embedding, merge) and the
images/s each process reports for its own loop.

Part 2 writes ``--shards`` synthetic shard files holding ``--rows`` rows in all (``--dim`` CLS + mean-patch
features, like a real run's output, with the metadata a ``--shard`` run records), then times
``chadavit embed merge`` on them in a child process and reports its peak memory next to the size
of the data: the merge streams, so memory stays far below the table's size.

    python benchmarks/bench_embed_shards.py                          # 1 and 2 processes, 100,000-row merge
    python benchmarks/bench_embed_shards.py --skip-embed --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_fields(root: Path, n: int, size: int, channels: int) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    base = rng.integers(100, 4000, (channels, size, size), dtype=np.uint16)
    for i in range(n):
        well = f"{chr(ord('A') + (i // 24) % 16)}{i % 24 + 1:02d}"
        for c in range(channels):
            tifffile.imwrite(root / f"{well}_s{i:05d}_w{c + 1}.tif", np.roll(base[c], (i * 7) % size, axis=0))


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and output of a child command."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    return seconds, proc.stdout


# runs python code, then prints the process's peak RSS from /proc (VmHWM is per process image; ru_maxrss would
# carry the benchmark's own peak over the fork)
PEAK = ("import sys, runpy\ntry:\n    exec(sys.argv[1])\nfinally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "    print(f'peak_rss_kb={hwm}')")


def run_python(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and output of ``code`` run in a fresh python with ``sys.argv[2:] = args``."""
    seconds, text = run_child([sys.executable, "-c", PEAK, code, *args], env)
    peak = float(re.findall(r"peak_rss_kb=(\d+)", text)[-1]) / 1024
    return seconds, peak, text


def bench_embed(args: argparse.Namespace, tmp: Path) -> None:
    root = tmp / "fields"
    root.mkdir()
    write_fields(root, args.images, args.size, args.channels)
    cores = args.threads or os.cpu_count() or 1
    print(f"{args.images} fields of {args.channels} x {args.size}^2 px, model {args.model}, {cores} cores in all")
    print(f"{'processes':>9} {'threads/proc':>12} {'wall s':>8} {'images/s (wall)':>16} {'per-process images/s':>22}")
    for p in args.procs:
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // p))}
        out = tmp / f"emb{p}.parquet"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(p),
               "-m", "chadavit", "embed", str(root), "--pattern", "{well}_s{site}_{channel}.tif", "--model",
               args.model, "--crops", "full", "--device", "cpu", "--workers", "1", "--batch-size",
               str(args.batch_size), "--no-progress", "--out", str(out)]
        seconds, text = run_child(cmd, env)
        rates = [float(x) for x in re.findall(r"\(([\d.]+) images/s\)", text)]
        per = ", ".join(f"{r:.2f}" for r in rates)
        print(f"{p:>9} {max(1, cores // p):>12} {seconds:>8.1f} {args.images / seconds:>16.2f} {per:>22}")


def write_synthetic_shards(folder: Path, rows: int, shards: int, dim: int, crops: int) -> tuple[int, int]:
    """Shard files as ``chadavit embed --shard i/n`` writes them; returns (images, bytes on disk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from chadavit.embed.config import EmbedConfig
    from chadavit.embed.output import SETTINGS_KEY
    from chadavit.embed.shards import shard_metadata
    from chadavit.sharding import shard_of

    n_images = rows // crops
    ids = [f"P{k // 3456:03d}_{k:07d}" for k in range(n_images)]
    home = np.array([shard_of(i, shards) for i in ids])
    rng = np.random.default_rng(0)
    size = 0
    for s in range(shards):
        mine = np.nonzero(home == s)[0]
        settings = EmbedConfig(input="screen.csv", out="x", model="random:chada_vit_moyen", shard=f"{s}/{shards}")
        meta = {**settings.settings(), "model_class": "ChAdaViT", "model_config": {"embed_dim": dim},
                **shard_metadata(ids, len(mine))}
        idx = np.repeat(mine, crops)
        cols = {"Metadata_ImageId": pa.array([ids[k] for k in idx]), "Metadata_ImageIndex": pa.array(idx),
                "Metadata_CropIndex": pa.array(np.tile(np.arange(crops), len(mine)))}
        feats = rng.standard_normal((len(idx), 2 * dim), dtype=np.float32)
        for j in range(dim):
            cols[f"cls_{j}"] = pa.array(feats[:, j])
        for j in range(dim):
            cols[f"meanpatch_{j}"] = pa.array(feats[:, dim + j])
        table = pa.table(cols).replace_schema_metadata({SETTINGS_KEY: json.dumps(meta).encode()})
        path = folder / f"{s}.parquet"
        pq.write_table(table, path, row_group_size=65536,  # as a run's assembly writes it
                       use_dictionary=[c for c in table.column_names if c.startswith("Metadata_")])
        size += path.stat().st_size
    return n_images, size


def bench_merge(args: argparse.Namespace, tmp: Path) -> None:
    folder = tmp / "shards"
    folder.mkdir()
    n_images, size = write_synthetic_shards(folder, args.rows, args.shards, args.dim, args.crops)
    in_memory = args.rows * (2 * args.dim * 4 + 40) / 1e6
    paths = [str(folder / f"{s}.parquet") for s in range(args.shards)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base_s, base_mb, _ = run_python("import chadavit.cli.main, chadavit.embed.merge", [], env)
    merge = "from chadavit.cli.main import main; main(['embed', 'merge', *sys.argv[2:-1], '--out', sys.argv[-1]])"
    seconds, peak_mb, text = run_python(merge, [*paths, str(tmp / "screen.parquet")], env)
    read = "import pyarrow.parquet as pq; pq.read_table(sys.argv[2])"
    read_s, read_mb, _ = run_python(read, [str(tmp / "screen.parquet")], env)
    print(f"merge of {args.rows:,} rows ({n_images:,} images x {args.crops} crops, {2 * args.dim} float32 features, "
          f"{args.shards} shards, {size / 1e6:.0f} MB on disk, ~{in_memory:.0f} MB in memory):")
    print(f"  chadavit embed merge: {seconds:.1f} s wall ({args.rows / seconds:,.0f} rows/s), peak RSS {peak_mb:.0f} MB"
          f" (an idle python with the imports: {base_mb:.0f} MB, {base_s:.1f} s)")
    print(f"  reference, reading the merged table at once: {read_s:.1f} s wall, peak RSS {read_mb:.0f} MB")
    print("  " + [line for line in text.splitlines() if line.startswith("merged")][-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="random:chada_vit_moyen")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, help="cores to split between the processes (default: all)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--crops", type=int, default=4, help="rows per image in the synthetic shards")
    ap.add_argument("--dim", type=int, default=192, help="embedding size D (cls_* and meanpatch_* columns each)")
    ap.add_argument("--skip-embed", action="store_true")
    ap.add_argument("--skip-merge", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_embed:
            bench_embed(args, Path(d))
        if not args.skip_merge:
            bench_merge(args, Path(d))


if __name__ == "__main__":
    main()
