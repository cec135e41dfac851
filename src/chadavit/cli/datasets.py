"""`chadavit datasets`: the paper's evaluation datasets.

    chadavit datasets list
    chadavit datasets fetch bloodmnist --root data            # -> data/bloodmnist/bloodmnist.npz (MD5 checked)
    chadavit datasets fetch bbbc021 --root data --subset Week1_22123,Week2
    chadavit datasets check bbbc048 data/bbbc048

``fetch`` resumes interrupted downloads, verifies sizes and published checksums, retries with back-off and
writes the layout ``chadavit eval --suite paper --set data_root=ROOT`` reads (``ROOT/<name>``). Where a dataset
cannot be fetched automatically it prints the manual steps; ``check`` verifies the result.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list, fetch and check the paper's evaluation datasets",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s.add_parser("list", help="each dataset with its source, size, licence and citation").set_defaults(func=run_list)
    f = s.add_parser("fetch", help="download and lay out one dataset under ROOT/NAME")
    f.add_argument("name", help="dataset name (see `chadavit datasets list`)")
    f.add_argument("--root", default="data", help="data root, the suite's ${data_root} (default: ./data)")
    f.add_argument("--base-url", default=None, help="a mirror: every file is fetched from BASE_URL/NAME/<file>")
    f.add_argument("--subset", default=None, help="comma-separated part to fetch: BBBC021 plates or weeks, "
                   "Bray plates, BloodMNIST image sizes (28,64,128,224)")
    f.add_argument("--retries", type=int, default=5, help="extra attempts per file (default 5)")
    f.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds, doubled each time")
    f.add_argument("--keep-archives", action="store_true", help="keep downloaded zips under ROOT/NAME/.downloads")
    f.add_argument("--source", choices=("cil", "idr"), default="cil",
                   help="Bray images: Cell Image Library zips (cil, default) or IDR idr0016 through the IDR client")
    f.add_argument("--wells", default=None, help="Bray from IDR: comma-separated wells to fetch, e.g. A01,B02")
    f.add_argument("--idr-url", default=None, help="IDR server (default: the public IDR)")
    f.add_argument("--yes", "-y", action="store_true",
                   help="download more than 1 GB without asking (asked on a terminal; refused otherwise)")
    f.set_defaults(func=run_fetch)
    c = s.add_parser("check", help="validate a dataset folder; names the first thing that is wrong")
    c.add_argument("name")
    c.add_argument("dir")
    c.set_defaults(func=run_check)


def run_list(args: argparse.Namespace) -> int:
    from chadavit.evaluation.datasets import CATALOG

    for d in CATALOG.values():
        print(f"{d.name:11s} {d.title}\n  source:   {d.source}\n  size:     {d.size}\n  licence:  {d.licence}\n"
              f"  cite:     {d.citation}\n  fetch:    {d.fetch}\n")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from chadavit.evaluation.data import DatasetLayoutError
    from chadavit.evaluation.datasets.checking import check
    from chadavit.evaluation.datasets.download import RetryPolicy
    from chadavit.evaluation.datasets.fetching import fetch

    subset = [x.strip() for x in args.subset.split(",") if x.strip()] if args.subset else None
    target = fetch(args.name, args.root, base_url=args.base_url, subset=subset,
                   policy=RetryPolicy(retries=args.retries, backoff=args.backoff), keep_archives=args.keep_archives,
                   source=args.source, wells=args.wells.split(",") if args.wells else None, idr_url=args.idr_url,
                   yes=args.yes, ask=_ask if sys.stdin.isatty() and sys.stderr.isatty() else None)
    try:
        print(f"{args.name}: {check(args.name, target)}")
        print(f"ready: chadavit eval --suite paper --set data_root={args.root}")
    except DatasetLayoutError as exc:  # manual datasets: the images are not there yet
        print(f"{args.name}: not complete yet ({str(exc).splitlines()[0]})")
    return 0


def _ask(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    return input().strip().lower() in ("y", "yes")


def run_check(args: argparse.Namespace) -> int:
    from chadavit.evaluation.datasets.checking import check

    print(f"{args.name}: OK: {check(args.name, args.dir)}")
    return 0
