"""Time `--pattern` grouping with full accounting (ambiguity and duplicate checks) on many file names.

    python benchmarks/bench_patterns.py --files 20000

Writes empty files (names only matter) to a temporary folder and prints files/s for an
unambiguous typed pattern and for an untyped one whose splits must be compared.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from chadavit.data.readers import group_pattern_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        n_images = args.files // 4
        for i in range(n_images):
            well = f"{'ABCDEFGHIJKLMNOP'[i % 16]}{(i // 16) % 24 + 1:02d}"
            for c in range(4):
                (root / f"P{i // 384:03d}_{well}_s{i:05d}_w{c + 1}.tif").touch()
        for label, pattern in (("typed", r"{plate}_{well:[A-P]\d\d}_s{site}_{channel:w\d}.tif"),
                               ("untyped", "{plate}_{well}_s{site}_{channel}.tif")):
            t0 = time.perf_counter()
            g = group_pattern_files(root, pattern)
            dt = time.perf_counter() - t0
            print(f"{label:8s} {g.summary()} in {dt:.2f} s ({g.n_files / dt:,.0f} files/s)")


if __name__ == "__main__":
    main()
