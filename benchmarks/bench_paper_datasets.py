"""Speed of the paper-dataset tools: resumable download from a local 127.0.0.1 server, and the MoA protocol on
the real BBBC021 metadata (3,848 annotated + DMSO fields; random features stand in for an encoder's).

    python benchmarks/bench_paper_datasets.py                  # 64 MB download, 384-d features
    python benchmarks/bench_paper_datasets.py --mb 256 --dim 192 --shared ../shared
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from chadavit.evaluation.datasets.download import RetryPolicy, download


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def bench_download(mb: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "srv", Path(tmp) / "dst"
        src.mkdir()
        body = np.random.default_rng(0).bytes(mb << 20)
        (src / "f.bin").write_bytes(body)
        md5 = hashlib.md5(body).hexdigest()
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(src)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
        t0 = time.perf_counter()
        download(url, dst / "f.bin", size=len(body), md5=md5, policy=RetryPolicy(retries=0), say=lambda s: None,
                 tty=False)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        hashlib.md5((dst / "f.bin").read_bytes()).hexdigest()
        md5_s = time.perf_counter() - t0
        server.shutdown()
    print(f"download {mb} MB from 127.0.0.1 incl. size + MD5 check: {dt:.2f} s ({mb / dt:.0f} MB/s); "
          f"MD5 alone {md5_s:.2f} s")


def bench_moa(shared: Path, dim: int) -> None:
    from chadavit.evaluation.datasets.bbbc021 import read_metadata
    from chadavit.evaluation.moa import moa_retrieval

    meta = read_metadata(shared / "data" / "eval_metadata" / "bbbc021")
    meta = meta[meta["moa"].notna()].reset_index(drop=True)
    x = np.random.default_rng(0).normal(size=(len(meta), dim)).astype(np.float32)
    t0 = time.perf_counter()
    r = moa_retrieval(x, meta, seed=0, cell_fraction=0.8, control="DMSO")
    dt = time.perf_counter() - t0
    print(f"MoA protocol, {len(meta):,} BBBC021 fields x {dim} features: {dt:.2f} s; NSC {r['nsc']:.1f}% "
          f"(chance {r['nsc_chance']:.1f}%, {r['n_treatments_nsc']:.0f} treatments), NSCB {r['nscb']:.1f}% "
          f"(chance {r['nscb_chance']:.1f}%, {r['n_treatments_nscb']:.0f} treatments)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    a = ap.parse_args()
    bench_download(a.mb)
    if (a.shared / "data" / "eval_metadata" / "bbbc021").is_dir():
        bench_moa(a.shared, a.dim)
    else:
        print(f"MoA benchmark skipped: {a.shared}/data/eval_metadata/bbbc021 not found (--shared)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
