"""`chadavit profile EMB.parquet --by Metadata_Compound,Metadata_Concentration --control DMSO`: mAP of embeddings.

Crops are aggregated to wells (median), normalised per plate against the control wells and feature-selected
as pycytominer does, then scored with copairs: replicate retrieval, MoA retrieval (with --moa), and the
fraction of treatments retrieved significantly (FDR-corrected). Needs: pip install 'chadavit[profiling]'.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="profiling metrics (copairs mAP) of an embed output",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("embeddings", help="Parquet written by `chadavit embed` (or any table of profiles)")
    p.add_argument("--by", required=True, help="treatment columns, comma-separated (Metadata_ prefix optional)")
    p.add_argument("--control", help="value of the control treatment (e.g. DMSO): normalise against it, and use it "
                   "only as a negative")
    p.add_argument("--control-col", help="column holding --control (default: the first --by column)")
    p.add_argument("--moa", help="MoA column: also report MoA retrieval (same MoA, different compound)")
    p.add_argument("--platemap", help="CSV joined on Metadata_Well (and Metadata_Plate if it has one) to add "
                   "treatment/MoA columns")
    p.add_argument("--features", default="cls", help="feature prefix (cls, meanpatch, chan = every per-channel "
                   "column; default cls)")
    p.add_argument("--plate-col", default="Metadata_Plate", help="normalise within each value of this column")
    p.add_argument("--method", default="standardize", choices=("standardize", "robustize", "mad_robustize"),
                   help="pycytominer normalisation method (default standardize)")
    p.add_argument("--no-feature-select", dest="feature_select", action="store_false",
                   help="skip pycytominer feature_select")
    p.add_argument("--null-size", type=int, default=10000, help="permutations for copairs p-values (default 10000)")
    p.add_argument("--threshold", type=float, default=0.05, help="FDR level for 'retrieved' (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: EMB.profile/ beside the input)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chadavit.profiling.report import profile_embeddings

    out, summary = profile_embeddings(
        args.embeddings, by=[b.strip() for b in args.by.split(",") if b.strip()], control=args.control,
        control_col=args.control_col, moa_col=args.moa, platemap=args.platemap, feature_prefix=args.features,
        plate_col=args.plate_col, method=args.method, feature_select=args.feature_select, null_size=args.null_size,
        threshold=args.threshold, seed=args.seed, out_dir=args.out)
    print(f"replicate retrieval: mAP {summary['replicate_map']:.3f}, {summary['replicate_fraction_retrieved']:.0%} of "
          f"{summary['replicate_groups']} treatments retrieved (FDR < {args.threshold})")
    if "moa_map" in summary:
        print(f"MoA retrieval:       mAP {summary['moa_map']:.3f}, {summary['moa_fraction_retrieved']:.0%} of "
              f"{summary['moa_groups']} MoAs retrieved")
    print(f"{summary['n_wells']} wells, {summary['n_features_kept']}/{summary['n_features']} features kept; "
          f"tables in {out}")
    return 0
