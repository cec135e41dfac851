"""Where ``chadavit demo`` spends its time: wall and CPU seconds of pretraining and of each evaluation suite, and,
inside the suites, of each task kind (probes by protocol), of the CellProfiler read-outs (the time the suite waits
for cp_measure) and of the figures.

    python benchmarks/bench_demo.py --out /tmp/demo_bench [--pretrained DIR/pretrain]

``--pretrained`` copies a finished demo pretraining folder (``OUT/pretrain`` of an earlier demo) and times only
the evaluation, which is the part whose numbers do not depend on a new training run. The demo's outputs are
written as ``chadavit demo`` writes them, so its ``eval*/summary.csv`` can be compared with another run's.

CPU seconds count this process and every process it started (data-loader and CellProfiler workers, finished or
still running), read from ``/proc`` (Linux). On the shared 2-core VM the wall time moves with the other users'
load: the load average is printed before and after each phase, and CPU seconds are the steadier number.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# the CellProfiler worker pools, as under the `chadavit` command (this script's entry point is guarded)
os.environ.setdefault("CHADAVIT_CP_WORKERS", str(max(1, min(4, len(os.sched_getaffinity(0))))))

import chadavit.openmp  # noqa: F401  (before torch, as the chadavit command)

TICK = os.sysconf("SC_CLK_TCK")


def _descendants_cpu(root: int) -> float:
    """CPU seconds (user + system) of the live descendants of ``root``, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(d.name))
        cpu[int(d.name)] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, list(children[root])
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += children[p]
    return total


def cpu_seconds() -> float:
    """This process, its finished (waited-for) children and its live descendants."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + _descendants_cpu(os.getpid())


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


@contextmanager
def phase(name: str, rows: list[tuple[str, float, float, str]]):
    w0, c0, l0 = time.perf_counter(), cpu_seconds(), load()
    yield
    rows.append((name, time.perf_counter() - w0, cpu_seconds() - c0, f"{l0} -> {load()}"))


def _timed(owner: Any, name: str, key: Any, acc: dict[str, list[float]]) -> None:
    """Wrap ``owner.name`` to add its wall and process-CPU seconds to ``acc[key(args)]``."""
    fn = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            a = acc[key(*args, **kwargs)]
            a[0] += time.perf_counter() - w
            a[1] += time.process_time() - c
    setattr(owner, name, wrapper)


def instrument() -> dict[str, list[float]]:
    """Per task kind, CellProfiler read-outs and figures: [wall s, CPU s of this process]."""
    from chadavit.evaluation import figures, tasks
    from chadavit.models.references import CellProfilerEncoder

    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    _timed(tasks.TaskRunner, "run_task", lambda self, lm, task, data: f"task {task.protocol}", acc)
    _timed(CellProfilerEncoder, "vectors", lambda *a, **k: "  of which CellProfiler read-outs", acc)
    _timed(tasks.TaskRunner, "features", lambda *a, **k: "  of which feature read-outs (all models)", acc)
    _timed(figures, "make_figures", lambda *a, **k: "figures", acc)
    return acc


def time_suites(rows: list[tuple[str, float, float, str]]) -> None:
    """Each ``run_suite`` call of the demo as a phase (the demo runs both suites in one call, as ``chadavit demo``)."""
    import chadavit.evaluation as ev

    run = ev.run_suite

    def wrapper(suite: Any, *args: Any, **kwargs: Any) -> Any:
        with phase(f"evaluation suite {suite}", rows):
            return run(suite, *args, **kwargs)
    ev.run_suite = wrapper


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--pretrained", type=Path, help="a finished demo pretraining folder: time the evaluation only")
    args = ap.parse_args(argv)
    from chadavit.experiments.demo import run_demo, run_demo_evaluation

    if args.pretrained and not (args.out / "pretrain").exists():
        shutil.copytree(args.pretrained, args.out / "pretrain")
    rows: list[tuple[str, float, float, str]] = []
    acc = instrument()
    print(f"machine: {os.cpu_count()} CPU(s), load {load()} (1/5/15 min); python {sys.version.split()[0]}")
    w0 = time.perf_counter()
    if args.pretrained:
        summary = {"backbone": str(args.out / "pretrain" / "backbone")}
    else:
        with phase("pretraining + learning check", rows):
            summary = run_demo(args.out, progress=False)
    time_suites(rows)
    with phase("evaluation (both suites, as chadavit demo)", rows):
        run_demo_evaluation(summary, args.out, progress=False)
    total = time.perf_counter() - w0
    print(f"\n{'phase':44s} {'wall s':>8s} {'CPU s':>8s}  load (1/5/15) before -> after")
    for name, wall, cpu, ld in rows:
        print(f"{name:44s} {wall:8.1f} {cpu:8.1f}  {ld}")
    print(f"{'total':44s} {total:8.1f}")
    print(f"\n{'inside the suites (this process)':44s} {'wall s':>8s} {'CPU s':>8s}")
    for k in sorted(acc, key=lambda k: (not k.startswith("task"), k)):
        print(f"{k:44s} {acc[k][0]:8.1f} {acc[k][1]:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
