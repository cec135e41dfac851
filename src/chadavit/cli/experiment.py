"""`chadavit experiment`: run a study described by one YAML file, and tabulate it in the paper's layouts.

    chadavit experiment list  src/chadavit/configs/experiments/small_study.yaml
    chadavit experiment run   small_study                     # every run in order; finished runs are skipped
    chadavit experiment run   small_study --index 3           # one run (array jobs: --index $SLURM_ARRAY_TASK_ID)
    chadavit experiment report small_study --out report/  # report.md + table3, cls_vs_all_tokens, scaling (md/csv/png)
"""

from __future__ import annotations

import argparse

from chadavit.cli.options import add_output_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run a study of pretraining + evaluation runs from one file, and report it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")
    r = s.add_parser("run", help="pretrain and evaluate the runs (finished runs are skipped)")
    r.add_argument("file", help="experiment YAML (or the name of a bundled one, e.g. small_study)")
    r.add_argument("--index", type=int, default=None, help="run only this run (0-based, see `list`)")
    add_output_options(r, help="results root (default: the file's `out`)")
    r.add_argument("--force", action="store_true", help="rerun finished runs")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=_run)
    rep = s.add_parser("report", help="gather finished runs into Table 3, CLS vs all-token and scaling layouts")
    rep.add_argument("file")
    rep.add_argument("--results", default=None, help="results root (default: the file's `out`)")
    add_output_options(rep, help="report folder (default: RESULTS/report)")
    rep.set_defaults(func=_report)
    ls = s.add_parser("list", help="print the runs with their --index and whether they are finished")
    ls.add_argument("file")
    ls.add_argument("--results", default=None)
    ls.set_defaults(func=_list)


def _load(path: str):
    from chadavit.experiments.spec import load_experiment

    return load_experiment(path)


def _run(args: argparse.Namespace) -> int:
    from chadavit.experiments.runner import run_experiment

    exp = _load(args.file)
    run_experiment(exp, index=args.index, out=args.out, force=args.force, progress=not args.no_progress)
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chadavit.experiments.report import make_report

    exp = _load(args.file)
    results = args.results or exp.out
    path = make_report(exp, args.out or Path(results) / "report", results)
    print(path.read_text())
    return 0


def _list(args: argparse.Namespace) -> int:
    from chadavit.experiments.runner import is_finished

    exp = _load(args.file)
    for r in exp.runs:
        state = "finished" if is_finished(exp, r, args.results) else "todo"
        print(f"{r.index:3d}  {r.name:32s} {r.model:26s} {state}")
    return 0
