"""Cells per second of ``chadavit embed --features cellprofiler`` and ``--features learned,cellprofiler``.

Embeds real fields (default: the 72 Transfluor GFP fields of the CellProfiler examples, 512 x 512, ~60 nuclei
each) with ``--crops nuclei``, and prints, for each feature choice, cells (rows) per second end to end, and where
the time goes for CellProfiler (segmentation vs each cp_measure family, measured on one field in this process).

    python benchmarks/bench_cellprofiler.py [--input DIR] [--fields 12] [--model random:chada_vit_nano]
        [--crop-size 64] [--workers 2]
    python benchmarks/bench_cellprofiler.py --real-crops [--limit 100]   # CPU per crop of the evaluation's vector

The machine's load average is printed with the numbers: on a shared VM it changes them several-fold.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import chadavit.openmp  # noqa: F401  (before torch, as the chadavit command)
import numpy as np

TRANSFLUOR = "data/cellprofiler_examples/ExampleIlluminationCorrection_Transfluor"


HUMAN = "data/cellprofiler_examples/ExampleHuman/AS_09125_050116030001_D03f00d{}.tif"  # DNA, PH3, CellBody


def families_on_one_field(img: np.ndarray, names: list[str], label: str) -> None:
    """CPU seconds of segmentation (nuclei, cells) and of each family over all object sets of one field."""
    from chadavit.data.crops import find_nuclei
    from chadavit.measure import DEFAULT_FAMILIES, measure_objects, propagate_cells, segment_field, to_unit

    unit = to_unit(img)
    segment_field(unit, names)  # imports, first-call set-up
    t = time.process_time()
    obj = segment_field(unit, names)
    seg = time.process_time() - t
    t = time.process_time()
    find_nuclei(unit[0])
    nuc = time.process_time() - t
    cells = ""
    if obj.cells is not None:
        t = time.process_time()
        propagate_cells(obj.primary_labels, unit[-1])
        cells = f", cells {time.process_time() - t:.2f} s"
    named = obj.named()
    n = len(np.unique(obj.primary_labels[obj.primary_labels > 0]))
    measure_objects(unit, names, {"Nuclei": obj.primary_labels}, ["intensity"])  # imports, first-call set-up
    parts = {}
    for fam in DEFAULT_FAMILIES:
        t = time.process_time()
        measure_objects(unit, names, named, [fam])
        parts[fam] = time.process_time() - t
    total = seg + sum(parts.values())
    print(f"{label}: one field {img.shape}, {n} cells, objects {', '.join(named)}: segmentation {seg:.2f} s "
          f"(nuclei {nuc:.2f} s{cells}), measurements {sum(parts.values()):.2f} s CPU ({n / total:.0f} cells/s on one core)")
    print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])))


def real_crops_cost(limit: int | None = None) -> None:
    """CPU seconds of the evaluation's CellProfiler vector (``crop_vector``) over the `real` suite's packaged
    64-px crops, per dataset, in this process (the cost the demo and ``chadavit eval`` pay per crop)."""
    import json
    from importlib.resources import files

    from chadavit.measure.crop_vector import crop_vector

    z = np.load(str(files("chadavit.evaluation") / "data" / "real_cells_64.npz"))
    meta = json.loads(str(z["meta"]))
    crop_vector(z[f"{next(iter(meta))}__crops"][0], meta[next(iter(meta))]["channels"])  # imports, set-up
    total, n_all = 0.0, 0
    for task, m in meta.items():
        crops = z[f"{task}__crops"][:limit]
        t = time.process_time()
        for im in crops:
            crop_vector(im, m["channels"])
        dt = time.process_time() - t
        total, n_all = total + dt, n_all + len(crops)
        print(f"  {task}: {len(crops)} crops x {len(m['channels'])} ch, {dt:.1f} s CPU ({1000 * dt / len(crops):.0f} ms/crop)")
    print(f"real suite crops: {n_all} in {total:.1f} s CPU ({1000 * total / n_all:.0f} ms/crop); "
          f"load {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("CHADAVIT_SHARED", "../shared"))
    ap.add_argument("--input", default=str(shared / TRANSFLUOR))
    ap.add_argument("--fields", type=int, default=12, help="fields to embed (default 12)")
    ap.add_argument("--model", default="random:chada_vit_nano")
    ap.add_argument("--crop-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--real-crops", action="store_true",
                    help="only the CPU cost per crop of the evaluation's vector on the `real` suite's crops")
    ap.add_argument("--limit", type=int, default=None, help="with --real-crops: at most this many crops per set")
    args = ap.parse_args()
    if args.real_crops:
        return real_crops_cost(args.limit)
    from chadavit.embed import EmbedConfig, run_embed

    files = sorted(p for p in Path(args.input).iterdir() if p.suffix.lower() in (".tif", ".tiff"))[: args.fields]
    if not files:
        raise SystemExit(f"no TIFF fields in {args.input}")
    print(f"{len(files)} fields from {args.input}; {os.cpu_count()} CPUs; load average before: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    import tifffile

    first = tifffile.imread(files[0])
    families_on_one_field(first[None] if first.ndim == 2 else first, ["GFP"] if "Transfluor" in args.input
                          else ["DNA"], files[0].name)
    human = [shared / HUMAN.format(i) for i in range(3)]
    if all(p.exists() for p in human):
        families_on_one_field(np.stack([tifffile.imread(p) for p in human]), ["DNA", "PH3", "CellBody"],
                              "ExampleHuman")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fields"
        src.mkdir()
        for f in files:
            shutil.copy(f, src / f.name)
        for feats in ("cellprofiler", "learned", "learned,cellprofiler"):
            cfg = EmbedConfig(input=str(src), out=str(Path(tmp) / f"{feats.replace(',', '_')}.parquet"),
                              model=args.model if "learned" in feats else None, features=feats, crops="nuclei",
                              crop_size=args.crop_size, workers=args.workers, progress=False, precision="fp32")
            t, cpu = time.perf_counter(), time.process_time()
            res = run_embed(cfg)
            dt, cpu = time.perf_counter() - t, time.process_time() - cpu
            print(f"--features {feats:<22} {res.n_rows} cells in {dt:.1f} s: {res.n_rows / dt:.1f} cells/s, "
                  f"{cpu:.1f} s CPU ({res.n_rows / cpu:.1f} cells per CPU second) "
                  f"(model {args.model if 'learned' in feats else '-'}, crops {args.crop_size} px, "
                  f"workers {args.workers}; load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
