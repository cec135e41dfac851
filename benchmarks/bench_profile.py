"""Time of the profiling steps on a synthetic 384-well plate set: normalise + feature select, and copairs mAP.

Profiles: ``--plates`` plates of 384 wells (``--controls`` DMSO wells per plate, the rest ``--compounds``
compounds in replicate wells spread over plates), ``--dim`` features (192 = ChAda-ViT Moyen CLS).

    python benchmarks/bench_profile.py                    # 4 plates x 384 wells, 192 features, null size 10000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def synthetic(plates: int, controls: int, compounds: int, dim: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(compounds, dim))
    moa = rng.integers(0, max(compounds // 5, 2), compounds)
    rows, feats = [], []
    for p in range(plates):
        shift = 5 * rng.normal(size=dim)
        for w in range(384):
            if w < controls:
                rows.append({"Metadata_Plate": f"P{p}", "Metadata_Well": f"w{w}", "Metadata_Compound": "DMSO",
                             "Metadata_MoA": None})
                feats.append(shift + rng.normal(size=dim))
            else:
                c = (w + p) % compounds
                rows.append({"Metadata_Plate": f"P{p}", "Metadata_Well": f"w{w}", "Metadata_Compound": f"c{c}",
                             "Metadata_MoA": f"m{moa[c]}"})
                feats.append(shift + 0.5 * centres[c] + rng.normal(size=dim))
    return pd.concat([pd.DataFrame(rows), pd.DataFrame(np.array(feats), columns=[f"cls_{j}" for j in range(dim)])],
                     axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plates", type=int, default=4)
    ap.add_argument("--controls", type=int, default=32)
    ap.add_argument("--compounds", type=int, default=100)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--null-size", type=int, default=10000)
    args = ap.parse_args()
    from chadavit.profiling import map_scores, normalize_profiles

    df = synthetic(args.plates, args.controls, args.compounds, args.dim)
    feats = [c for c in df.columns if c.startswith("cls_")]
    t0 = time.perf_counter()
    normed, kept = normalize_profiles(df, feats, control_col="Metadata_Compound", control="DMSO")
    t1 = time.perf_counter()
    res = map_scores(normed, ["Metadata_Compound"], features=kept, control="DMSO", moa_col="Metadata_MoA",
                     null_size=args.null_size)
    t2 = time.perf_counter()
    print(f"{len(df)} wells x {len(feats)} features ({args.plates} plates); kept {len(kept)} features")
    print(f"normalize + feature_select: {t1 - t0:.2f} s")
    print(f"map_scores (replicate + MoA, null size {args.null_size}): {t2 - t1:.2f} s")
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in res.summary.items()})


if __name__ == "__main__":
    main()
