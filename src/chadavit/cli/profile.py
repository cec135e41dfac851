"""`chadavit profile EMB.parquet --by Metadata_Compound,Metadata_Concentration --control DMSO`: mAP of embeddings.

Crops are aggregated to wells (median), normalised per plate against the control wells (mad_robustize) and
feature-selected as pycytominer does (variance, correlation, NA, blocklist), optionally PCA or sphering, then
scored with copairs: replicate retrieval, MoA retrieval (with --moa), and the fraction of treatments retrieved
significantly (FDR-corrected); for each feature group side by side: learned (cls_), CellProfiler (cp_) and
hybrid. Needs: pip install 'chadavit[profiling]'.
"""

from __future__ import annotations

import argparse

from chadavit.cli.options import add_output_options


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
    p.add_argument("--features", default="auto",
                   help="feature groups side by side: auto (learned, cellprofiler and hybrid, as the table has them; "
                        "default), or a comma list of learned, cellprofiler, hybrid or column prefixes (meanpatch)")
    p.add_argument("--aggregate", default="well", choices=("well", "image"),
                   help="profile per well (median over its rows; default) or per image")
    p.add_argument("--transform", default="none", choices=("none", "pca", "spherize"),
                   help="after feature selection: PCA (99%% variance) or sphering on the controls (default none)")
    p.add_argument("--plate-col", default="Metadata_Plate", help="normalise within each value of this column")
    p.add_argument("--method", default="mad_robustize", choices=("standardize", "robustize", "mad_robustize"),
                   help="pycytominer normalisation method, per plate (default mad_robustize)")
    p.add_argument("--no-feature-select", dest="feature_select", action="store_false",
                   help="skip pycytominer feature_select")
    p.add_argument("--null-size", type=int, default=10000, help="permutations for copairs p-values (default 10000)")
    p.add_argument("--threshold", type=float, default=0.05, help="FDR level for 'retrieved' (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p, help="output folder (default: EMB.profile/ beside the input)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chadavit.profiling.report import profile_embeddings

    out, summary = profile_embeddings(
        args.embeddings, by=[b.strip() for b in args.by.split(",") if b.strip()], control=args.control,
        control_col=args.control_col, moa_col=args.moa, platemap=args.platemap, feature_prefix=args.features,
        aggregate=args.aggregate, transform_method=args.transform,
        plate_col=args.plate_col, method=args.method, feature_select=args.feature_select, null_size=args.null_size,
        threshold=args.threshold, seed=args.seed, out_dir=args.out)
    for group, g in summary["groups"].items():
        line = (f"{group:<13} replicate mAP {g['replicate_map']:.3f} ({g['replicate_fraction_retrieved']:.0%} of "
                f"{g['replicate_groups']} retrieved, FDR < {args.threshold})")
        if "moa_map" in g:
            line += f"; MoA mAP {g['moa_map']:.3f} ({g['moa_fraction_retrieved']:.0%} of {g['moa_groups']} MoAs)"
        print(line + f"; {g['n_features_kept']} features kept")
    print(f"{summary['n_wells']} profiles; tables and map_by_group.png in {out}")
    return 0
