"""`chadavit eval`: run an evaluation suite over one or more frozen encoders.

    chadavit eval --suite synthetic --model random:chada_vit_nano --model pixel_stats --out runs/eval

Beside the models asked for, every report shows baselines that need no training (raw pixels, hand-crafted
CellProfiler-style features, random init of each trained model) and each model's gap to the best of them.
Writes ``results.md`` (paper-style table: rows models, columns tasks, mean ± std over seeds), ``table.csv``,
``summary.csv``, ``results_per_seed.csv`` and ``figures/`` under ``--out``.

Exit status: 0 every task ran, 1 some task failed (the others' results are written), 2 bad options or suite.
"""

from __future__ import annotations

import argparse
import sys

from chadavit.cli.options import add_model_options, add_output_options, add_runtime_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="benchmark frozen encoders on an evaluation suite (tables + figures)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="synthetic",
                   help="suite preset name (see --list) or a YAML file (default: synthetic)")
    add_model_options(p, repeat=True, help="random:PRESET[,key=value] | PRESET | DIR (save_pretrained) | "
                      "hf:OWNER/NAME[@REV] | official:PATH[:teacher] | pixels; repeat for several models (default: "
                      "random:chada_vit_nano)")
    add_output_options(p, default="runs/eval", help="output directory (default: runs/eval)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds overriding the suite's (e.g. 0,1,2,3,4)")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                   help="suite variable, e.g. data_root=/data/benchmarks (used as ${data_root} in suite files)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the suite's threads, else torch's default)")
    add_runtime_options(p, "eval", device="cpu", device_help="where encoders and the decoder run, e.g. cuda "
                        "(default: cpu)", precision_help="feature extraction precision")
    p.add_argument("--skip-missing", action="store_true",
                   help="skip datasets that are not found (with a message) instead of stopping")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--no-baselines", action="store_true",
                   help="leave out the raw-pixel, hand-crafted and random-init baselines (on by default)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.add_argument("--list", action="store_true", help="list suite presets and dataset adapters, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chadavit.evaluation.adapters import ADAPTERS
    from chadavit.evaluation.suite import SuiteError, list_suites, load_suite, run_suite
    from chadavit.evaluation.tables import terminal_summary

    if args.list:
        print("suites:   " + ", ".join(list_suites()))
        print("adapters: " + ", ".join(ADAPTERS))
        return 0
    variables = {}
    for item in args.set:
        if "=" not in item:
            raise SuiteError(f"--set expects VAR=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        variables[k.strip()] = v
    from chadavit.atomic import check_writable
    from chadavit.device import check_device

    suite = load_suite(args.suite, variables)
    check_device(args.device)
    check_writable(args.out, "--out")
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        raise SuiteError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
    from chadavit.models.spec import with_official_options

    models = [with_official_options(m, args.num_heads, args.final_norm_eps)
              for m in args.models or ["random:chada_vit_nano"]]
    summary = run_suite(suite, models, args.out, seeds=seeds,
                        figures=not args.no_figures, progress=not args.no_progress, threads=args.threads,
                        skip_missing=args.skip_missing, device=args.device, baselines=not args.no_baselines,
                        precision=args.precision)
    print()
    print(terminal_summary(summary, summary.attrs.get("primary"), summary.attrs.get("baselines")))
    print(f"full table: {args.out}/results.md")
    failures = summary.attrs.get("failures") or []
    if failures:
        print(f"{len(failures)} task(s) failed (listed in {args.out}/results.md), e.g. {failures[0]['model']} / "
              f"{failures[0]['task']}: {failures[0]['error']}", file=sys.stderr)
        return 1
    return 0
