"""``chadavit embed merge SHARD.parquet ... --out OUT``: join the outputs of ``embed --shard`` runs.

A subcommand of its own, ``embed-merge``; ``chadavit embed merge`` is its other spelling (``cli/main.py``
routes it here), so a folder literally named ``merge`` is embedded by writing it ``./merge``.
"""

from __future__ import annotations

import argparse

from chadavit.cli.options import add_output_options

# options of ``embed`` that mean nothing to ``merge``: given anyway, they are refused with a reason
EMBED_ONLY = ("model", "shard", "pattern", "channels", "channel_map", "limit")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed-merge", prog="chadavit embed merge",
                       help="join the outputs of `embed --shard` runs into one table (also: chadavit embed merge)",
                       description="Check every shard of one `chadavit embed --shard I/N` split (one split, each "
                                   "index once, the same settings and input listing, no image twice), then write "
                                   "the table one run would have written. Exit status: 0, 1 when some images "
                                   "failed in their shards, 2 when a check fails.",
                       epilog="example: chadavit embed merge shards/*.parquet --out screen.parquet")
    p.add_argument("shards", nargs="+", metavar="SHARD.parquet", help="the outputs of the shard runs")
    add_output_options(p, short=True, required=True, help="the merged Parquet file",
                       overwrite="replace an existing output")
    p.add_argument("--h5ad", help="also write AnnData from the merged table (needs anndata)")
    for name in EMBED_ONLY:  # accepted only to be refused with a reason, not with argparse's usage message
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=argparse.SUPPRESS)
    p.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    from chadavit.embed.merge import MergeError, merge_shards

    given = [f"--{k.replace('_', '-')}" for k in EMBED_ONLY if getattr(args, k, None)]
    if given:
        raise MergeError(f"chadavit embed merge: {', '.join(given)} do(es) not apply to merge (the shards record "
                         "their settings); give only shard files, --out, --overwrite and --h5ad")
    res = merge_shards(args.shards, args.out, overwrite=args.overwrite)
    print(f"merged {res.n_shards} shards: {res.n_rows} rows of {res.n_images} images into {res.out} "
          f"in {res.seconds:.1f} s")
    if args.h5ad:
        from chadavit.embed.output import write_h5ad

        print(f"wrote {write_h5ad(res.out, args.h5ad)}")
    if res.errors_path is not None:
        print(f"{res.n_failed} failed image(s) and {res.n_warnings} warning(s) of the shards in {res.errors_path}")
    return 1 if res.n_failed else 0
