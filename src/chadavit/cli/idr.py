"""`chadavit idr`: plan, download, merge and describe the IDRCell100k pretraining set.

    chadavit idr plan  --server URL --per-study 1300 --seed 0 --out plan.parquet
    chadavit idr plan  --studies-table [PATH] --per-study 1300        (offline: IDR's studies.tsv)
    chadavit idr build --server URL --per-study 1300 --seed 0 --size 224 --workers 4 --out DIR [--shard i/n]
    chadavit idr merge DIR... --out DIR
    chadavit idr stats DIR --figures FIGDIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chadavit.cli.options import add_output_options

DEFAULT_SERVER = "https://idr.openmicroscopy.org"


def _client_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server")
    g.add_argument("--server", default=DEFAULT_SERVER, help="IDR base URL (default: the public IDR)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    g.add_argument("--retries", type=int, default=6, help="retries per request (exponential back-off)")
    g.add_argument("--backoff", type=float, default=1.0, help="first back-off delay in seconds (doubles)")
    g.add_argument("--max-backoff", type=float, default=60.0)
    g.add_argument("--zarr-base", default=None,
                   help="OME-Zarr mirror root, images at {zarr-base}/{image_id}.zarr "
                        "(e.g. https://livingobjects.ebi.ac.uk/idr/zarr/v0.1)")
    g.add_argument("--zarr-studies", default="",
                   help="comma-separated studies (idr0002,...) or '*' whose images are read raw from --zarr-base")


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-study", type=int, default=1300,
                   help="N: images drawn from every Screen/Project (or study, see --unit) holding at least N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unit", choices=("container", "study"), default="container",
                   help="what must hold N images: each Screen/Project (default; matches the paper's counts) or an "
                        "idrNNNN study (its Cell screens/projects pooled)")
    p.add_argument("--sample-type", default="cell", help="IDR section (map annotation 'Sample Type')")
    p.add_argument("--workers", type=int, default=4, help="concurrent requests (keep it small: be polite)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("idr", help="build the IDRCell100k pretraining set from the Image Data Resource")
    isub = p.add_subparsers(dest="idr_command", required=True, metavar="ACTION")

    pl = isub.add_parser("plan", help="sample N images per Cell study and write the plan (nothing is downloaded)")
    _client_args(pl)
    _plan_args(pl)
    add_output_options(pl, help="plan table (.parquet or .csv); a *_studies table is written beside it "
                       "(offline: the Cell containers with their counts)")
    pl.add_argument("--studies-table", nargs="?", const="bundled", default=None, metavar="PATH",
                    help="offline: count what qualifies in IDR's studies.tsv (no PATH: the bundled copy)")
    pl.add_argument("--released-by", default=None, metavar="RELEASE",
                    help="offline only: keep containers introduced up to this IDR release (e.g. prod119)")
    pl.add_argument("--json", action="store_true", help="print totals as JSON")
    pl.set_defaults(func=run_plan)

    b = isub.add_parser("build", help="download the planned images into a chadavit dataset (resumable)")
    _client_args(b)
    _plan_args(b)
    b.add_argument("--plan", help="use this plan table instead of planning now")
    b.add_argument("--size", type=int, default=224, help="stored planes are size x size")
    add_output_options(b, required=True, help="dataset directory")
    b.add_argument("--shard", default=None, help="i/n: build only shard i of n (0-based), for array jobs")
    b.add_argument("--flush-every", type=int, default=64, help="publish stored images every K images")
    b.add_argument("--flush-seconds", type=float, default=30.0,
                   help="and at least every S seconds (default 30): a kill loses at most the last S seconds")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=run_build, workers=2)

    m = isub.add_parser("merge", help="join shard directories into one dataset")
    m.add_argument("inputs", nargs="+")
    add_output_options(m, required=True, help="dataset directory to write")
    m.set_defaults(func=run_merge)

    s = isub.add_parser("stats", help="print counts and draw the imaging-method and channel-count figures")
    s.add_argument("dataset")
    s.add_argument("--figures", default=None, metavar="FIGDIR")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_stats)


def make_client(args: argparse.Namespace):
    from chadavit.data.idr_client import IDRClient, RetryPolicy

    policy = RetryPolicy(retries=args.retries, backoff=args.backoff, max_backoff=args.max_backoff,
                         timeout=args.timeout)
    from chadavit.errors import ChadavitError
    from chadavit.net import unreachable

    if (why := unreachable(args.server)) is not None:  # offline: one line now, not minutes of retries
        raise ChadavitError(f"IDR server {args.server}: {why} Connect, or plan offline from IDR's studies table "
                            "with: chadavit idr plan --studies-table")
    studies = {s.strip() for s in args.zarr_studies.split(",") if s.strip()}
    return IDRClient(args.server, policy=policy, zarr_base=args.zarr_base, zarr_studies=studies)


def _print_plan_totals(plan, as_json: bool) -> None:
    t = plan.totals()
    df = plan.images
    if as_json:
        print(json.dumps(t))
        return
    print(f"qualifying {t['unit']}s: {t['groups']} of {t['groups_considered']} Cell {t['unit']}s considered "
          f"({t['studies']} studies, {t['containers']} containers)")
    print(f"images: {t['images']:,}")
    print(f"channels: {t['channels']:,}")
    print(f"imaging methods: {t['imaging_methods']}")
    if len(df):
        for k, v in df["imaging_method"].value_counts().items():
            print(f"  {k}: {v:,}")
        print("channels per image: " + ", ".join(f"{int(k)}: {v:,}" for k, v in
                                                 df["size_c"].astype(int).value_counts().sort_index().items()))
    skipped = plan.studies[~plan.studies["qualified"]]
    if len(skipped):
        print(f"left out (fewer images than --per-study): {len(skipped)}: " + ", ".join(skipped["group"]))


def run_plan(args: argparse.Namespace) -> int:
    if args.studies_table is not None:
        from chadavit.idr.plan import studies_table_summary

        s = studies_table_summary(None if args.studies_table == "bundled" else args.studies_table, args.per_study,
                                  args.sample_type, args.released_by)
        table = s.pop("containers")
        if args.out:
            from chadavit.idr.plan import write_table

            print(f"per-container table written to {write_table(table, args.out)}", file=sys.stderr)
        if args.json:
            print(json.dumps(s, indent=1))
            return 0
        n = s["per_study"]
        print(f"studies table: {s['table']}" + (f" (introduced up to {s['released_by']})" if s["released_by"] else ""))
        print(f"Sample Type = {s['sample_type']}: {s['containers_cell']} containers, {s['studies_cell']} studies, "
              f"{s['images_cell']:,} images")
        print(f"containers with >= {n} images: {s['containers_qualifying']} -> {s['container_sample_images']:,} "
              f"images, ~{s['container_sample_channels_est']:,} channels")
        print(f"studies with >= {n} images: {s['studies_qualifying']} -> {s['study_sample_images']:,} images, "
              f"~{s['study_sample_channels_est']:,} channels")
        print("paper (IDRCell100k): 79 studies, 104,093 images, 308,898 channels")
        return 0
    from chadavit.idr.plan import make_plan, write_table

    client = make_client(args)
    plan = make_plan(client, args.per_study, args.seed, args.unit, args.sample_type, args.workers, progress=True,
                     say=lambda m: print(m, file=sys.stderr, flush=True))
    _print_plan_totals(plan, args.json)
    if args.out:
        out = write_table(plan.images, args.out)
        sp = out.with_name(out.stem + "_studies" + out.suffix)
        write_table(plan.studies, sp)
        print(f"plan written to {out} (studies: {sp})", file=sys.stderr)
    return 0


def run_build(args: argparse.Namespace) -> int:
    from chadavit.idr.builder import build, parse_shard
    from chadavit.idr.plan import read_table
    from chadavit.idr.resume import build_plan, check_flush, check_stored_size

    shard = parse_shard(args.shard)
    client = make_client(args)
    out = Path(args.out)
    check_stored_size(out, args.size)
    if args.plan:
        images = read_table(args.plan)
    else:
        params = {"server": args.server, "per_study": args.per_study, "seed": args.seed, "unit": args.unit,
                  "sample_type": args.sample_type}
        images = build_plan(out, client, params, args.workers, progress=not args.no_progress,
                            on_new_plan=lambda plan: _print_plan_totals(plan, False),
                            say=lambda m: print(m, file=sys.stderr))
    check_flush(args.flush_every, args.flush_seconds)
    from chadavit.signals import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            res = build(images, out, client, size=args.size, workers=args.workers, shard=shard,
                        progress=not args.no_progress, flush_every=args.flush_every,
                        flush_seconds=args.flush_seconds)
    except KeyboardInterrupt:
        from chadavit.data.dataset import open_dataset

        print(f"interrupted; the {len(open_dataset(out))} image(s) stored in {out} are kept: re-run the same "
              "command to fetch the rest", file=sys.stderr)
        return 130
    print(f"shard {shard[0]}/{shard[1]}: {res.planned} planned, {res.already_done} already stored, "
          f"{res.written} written, {len(res.failures)} failed, {len(res.missing)} missing "
          f"({res.seconds:.1f} s, {res.written / max(res.seconds, 1e-9):.1f} img/s)")
    if len(res.failures):
        print(f"failures recorded in {out / 'failures.csv'}; re-run the same command to fill the gaps:",
              file=sys.stderr)
        for r in res.failures.head(20).itertuples():
            print(f"  image {r.image_id} ({r.study}): {r.error}", file=sys.stderr)
    return 0 if res.ok else 1


def run_merge(args: argparse.Namespace) -> int:
    from chadavit.idr.builder import merge

    n, fail = merge(args.inputs, args.out)
    print(f"merged {len(args.inputs)} directories into {args.out}: {n:,} images, {len(fail)} still failed")
    return 0 if not len(fail) else 1


def run_stats(args: argparse.Namespace) -> int:
    from chadavit.idr.stats import dataset_stats, draw_figures, format_stats

    st = dataset_stats(args.dataset)
    print(json.dumps(st, indent=1, default=str) if args.json else format_stats(st))
    if args.figures:
        for p in draw_figures(st, args.figures):
            print(f"figure: {p}", file=sys.stderr)
    return 0
