"""How long ``chadavit --help`` takes, and which heavy libraries the parser pulls in (target: under 1 s).

Runs ``chadavit --help`` (the installed console script) ``--repeat`` times in fresh processes and prints each
wall time, their median, the machine's load average, and whether building the parser imported torch, pandas
or numpy (it must not: subcommands import them inside their run functions).

    python benchmarks/bench_cli_startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

PROBE = ("import sys, chadavit.cli.main as m; m.build_parser(); "
         "print(','.join(sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'pandas', 'numpy'})) or '-')")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    exe = shutil.which("chadavit")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "chadavit", "--help"]
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    heavy = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout.strip()
    print(f"command: {' '.join(cmd)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print("runs (s): " + ", ".join(f"{t:.3f}" for t in times))
    print(f"median: {statistics.median(times):.3f} s (target < 1 s)")
    print(f"heavy libraries imported by the parser: {heavy}")


if __name__ == "__main__":
    main()
