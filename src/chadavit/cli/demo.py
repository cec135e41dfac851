"""`chadavit demo`: the default pretraining preset end to end, with the learning check (``experiments/demo.py``)."""

from __future__ import annotations

import argparse
import time

from chadavit.cli.options import add_output_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="pretrain a tiny ChAda-ViT on bundled data in a few CPU minutes and check that it learned",
        description="Runs the default pretraining preset (`demo`) on the bundled real crops and synthetic studies, "
                    "writes checkpoint, backbone (save_pretrained), logs and loss curve under OUT, then prints a kNN "
                    "learning check: localisation accuracy of the pretrained vs a randomly initialised encoder.")
    add_output_options(p, default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--no-eval", action="store_true", help="stop after pretraining and the learning check")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the demo preset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chadavit.experiments.demo import demo_verdict, format_summary, run_demo, run_demo_evaluation, suite_dir

    summary = run_demo(args.out, args.overrides)
    print(format_summary(summary))
    if args.no_eval:
        return 0
    from chadavit.evaluation.tables import terminal_summary

    t0 = time.perf_counter()
    tables = run_demo_evaluation(summary, args.out)
    for suite, table in tables.items():
        where = suite_dir(args.out, suite) / "results.md"
        print(f"\n{suite} evaluation suite ({where}):")
        print(terminal_summary(table, table.attrs.get("primary"), table.attrs.get("baselines")))
    print(f"\nverdict (pretrained vs the best baseline; evaluation {time.perf_counter() - t0:.0f} s):")
    for line in demo_verdict(tables):
        print(f"  {line}")
    return 0
