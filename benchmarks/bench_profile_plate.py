"""A real plate end to end: ``chadavit embed --features learned,cellprofiler`` + ``chadavit profile``.

The 72 Transfluor GFP fields of the CellProfiler examples (24 wells O01-O24 x 3 fields, 512 x 512 uint8) are
embedded with ``--crops nuclei`` (the GFP channel is the only one, so objects are found in it), then profiled.
The example ships no plate map (no treatments or controls), so the replicates are the 3 fields of a well:
profiles per field (``--aggregate image``), ``--by Well``, normalised per plate against all fields
(mad_robustize), feature selection, copairs replicate-retrieval mAP for learned, CellProfiler and hybrid.
This measures how consistently each feature group describes a well's fields, not a treatment effect.

    python benchmarks/bench_profile_plate.py [--model random:chada_vit_nano] [--out runs/transfluor]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import chadavit.openmp  # noqa: F401  (before torch, as the chadavit command)

TRANSFLUOR = "data/cellprofiler_examples/ExampleIlluminationCorrection_Transfluor"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("CHADAVIT_SHARED", "../shared"))
    ap.add_argument("--input", default=str(shared / TRANSFLUOR))
    ap.add_argument("--model", default="random:chada_vit_nano")
    ap.add_argument("--crop-size", type=int, default=64)
    ap.add_argument("--out", default="runs/transfluor")
    ap.add_argument("--null-size", type=int, default=10000)
    args = ap.parse_args()
    from chadavit.cli.main import main as cli

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    emb = out / "emb.parquet"
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    t = time.perf_counter()
    if not emb.exists():
        rc = cli(["embed", args.input, "--out", str(emb), "--model", args.model, "--features", "learned,cellprofiler",
                  "--crops", "nuclei", "--crop-size", str(args.crop_size), "--no-progress", "--precision", "fp32"])
        if rc not in (0, 1):
            raise SystemExit(rc)
    print(f"embed: {time.perf_counter() - t:.0f} s (load {os.getloadavg()[0]:.1f})")
    t = time.perf_counter()
    rc = cli(["profile", str(emb), "--by", "Well", "--aggregate", "image", "--null-size", str(args.null_size),
              "--out", str(out / "profile")])
    print(f"profile: {time.perf_counter() - t:.0f} s (load {os.getloadavg()[0]:.1f})")
    import pandas as pd

    table = pd.read_csv(out / "profile" / "groups.csv")
    print(table.round(3).to_string(index=False))
    print(f"plot: {out / 'profile' / 'map_by_group.png'}")


if __name__ == "__main__":
    main()
