"""Emulator build speed: `python tests/idr/bench_emulator_build.py WORKERS [FAULT_RATE]` (not a test).

The emulator runs in its own process (so the builder does not share its GIL) and serves 4 screens of
60 images of 3 x 520 x 696 uint16 (one screen as OME-Zarr); the builder plans 50 per screen and stores
them at 224 x 224.
"""
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def serve(q: "mp.Queue", fault_rate: float) -> None:
    from scipy.ndimage import gaussian_filter

    from idr.emulator import IDREmulator

    rng = np.random.default_rng(0)
    emu = IDREmulator(max_limit=500, chunk=256, fault_rate=fault_rate)
    for s in range(4):
        wells = []
        for w in range(30):
            f = []
            for _ in range(2):
                a = gaussian_filter(rng.random((3, 1, 520, 696)), (0, 0, 3, 3))
                a = (a - a.min()) / (a.max() - a.min()) * 4000 + rng.poisson(20, a.shape)
                f.append(emu.add_image(a.astype(np.uint16), zarr=(s == 3)))
            wells.append(f)
        emu.add_screen(f"idr09{s:02d}-bench/screenA", [wells])
    q.put(emu.start())
    time.sleep(3600)


if __name__ == "__main__":
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    fault = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    q: mp.Queue = mp.Queue()
    p = mp.Process(target=serve, args=(q, fault), daemon=True)
    p.start()
    url = q.get(timeout=300)
    from chadavit.idr.builder import build
    from chadavit.data.idr_client import IDRClient, RetryPolicy
    from chadavit.idr.plan import make_plan
    c = IDRClient(url, policy=RetryPolicy(retries=6, backoff=0.05, max_backoff=0.5, timeout=5),
                  zarr_base=url + "/zarr/v0.1", zarr_studies={"idr0903"})
    t = time.perf_counter()
    plan = make_plan(c, 50, 0)
    tp = time.perf_counter() - t
    r = build(plan.images, tempfile.mkdtemp() + "/ds", c, size=224, workers=workers, progress=False)
    print(f"workers={workers} faults={fault}: plan {len(plan.images)} images in {tp:.2f}s; build {r.written} images "
          f"({int(plan.images.size_c.sum())} channels) in {r.seconds:.1f}s = {r.written / r.seconds:.2f} img/s; "
          f"requests {c.requests_made}, retries {c.retries_made}, ok={r.ok}")
    p.terminate()
