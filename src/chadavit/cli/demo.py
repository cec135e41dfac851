"""`chadavit demo`: the default pretraining preset end to end, with the learning check."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="pretrain a tiny ChAda-ViT on bundled data in a few CPU minutes and check that it learned",
        description="Runs the default pretraining preset (`demo`) on the bundled real crops and synthetic studies, "
                    "writes checkpoint, backbone (save_pretrained), logs and loss curve under OUT, then prints a kNN "
                    "learning check: localisation accuracy of the pretrained vs a randomly initialised encoder.")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--no-eval", action="store_true", help="stop after pretraining and the learning check")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the demo preset")
    p.set_defaults(func=run)


def run_demo(out_dir: str | Path = "runs/demo", overrides: list[str] | tuple[str, ...] = (),
             progress: bool = True) -> dict[str, Any]:
    """Pretrain with the ``demo`` preset into ``out_dir/pretrain``; returns the run summary.

    Keys include ``knn_trained``, ``knn_random``, ``chance``, ``train_img_s``, ``loader_img_s``,
    ``backbone`` (a ``load_pretrained`` folder), ``checkpoint`` and ``wall_s``.
    """
    from chadavit.pretrain.config import load_config
    from chadavit.pretrain.trainer import train

    t0 = time.perf_counter()
    out = Path(out_dir)
    cfg = load_config("demo", [f"train.out_dir={out / 'pretrain'}", f"train.progress={str(progress).lower()}",
                               *overrides])
    from chadavit.pretrain.report import clean, write_summary

    summary = clean(train(cfg))  # a re-run into the same folder reports the finished run (already_finished)
    summary["demo_wall_s"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    write_summary(summary, out / "demo_summary.json")
    return summary


ONE_CHANNEL_NANO = "random:one_channel_vit_tiny,embed_dim=64,depth=4,num_heads=4,mlp_dim=256,img_size=64"


def run_demo_evaluation(summary: dict[str, Any], out_dir: str | Path, progress: bool = True,
                        suite: str = "synthetic") -> Any:
    """An evaluation suite for the model just trained, random init of it, and a One-Channel ViT.

    The random-init model is the same architecture and config as the trained backbone (saved next to it);
    the One-Channel ViT baseline has the same size (nano) and is not pretrained. `run_suite` adds the raw-pixel
    and hand-crafted baselines. Writes ``out_dir/eval`` (suite ``synthetic``) or ``out_dir/eval_<suite>``.
    """
    import torch

    from chadavit.evaluation import run_suite
    from chadavit.models import build_model, load_pretrained, save_pretrained

    backbone = Path(summary["backbone"])
    random_dir = Path(out_dir) / "random_init"
    config = load_pretrained(backbone).config
    torch.manual_seed(0)  # as evaluation.baselines.random_twin builds it, so the suite counts it as that baseline
    save_pretrained(build_model(config), random_dir)
    specs = [f"ChAda-ViT nano pretrained={backbone}", f"ChAda-ViT nano random init={random_dir}",
             f"One-Channel ViT nano random init={ONE_CHANNEL_NANO}"]
    return run_suite(suite, specs, Path(out_dir) / ("eval" if suite == "synthetic" else f"eval_{suite}"),
                     progress=progress)


def format_summary(s: dict[str, Any]) -> str:
    from chadavit.pretrain.report import collapse_line, finished_line, num

    lines = [
        *finished_line(s),
        (f"pretraining: {s['steps']} steps, final DINO loss {num(s.get('final_loss'), '{:.3f}')}, "
         f"{s['demo_wall_s']:.0f} s"),
        (f"throughput: training {num(s.get('train_img_s'), '{:.1f}')} images/s, data loading "
         f"{num(s.get('loader_img_s'), '{:.1f}')} images/s"),
        f"outputs: backbone {s.get('backbone')}, checkpoint {s['checkpoint']}, loss curve {s.get('loss_curve')}",
        *collapse_line(s),
    ]
    if "knn_trained" in s:
        verdict = ("better than random init (the verdicts against the best baseline follow the evaluation)"
                   if s["knn_trained"] > s["knn_random"] + 0.05 else "NOT clearly better than random init")
        lines.append(f"learning check (kNN localisation, held-out synthetic cells, chance {s['chance']:.2f}): "
                     f"pretrained {s['knn_trained']:.3f} vs random init {s['knn_random']:.3f} -> {verdict}")
    if s.get("skipped_images"):
        lines.append(f"skipped unreadable images: {s['skipped_images']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    summary = run_demo(args.out, args.overrides)
    print(format_summary(summary))
    if args.no_eval:
        return 0
    from chadavit.evaluation.tables import terminal_summary

    for suite in ("synthetic", "real"):  # the demo's verdict is against the best baseline of each suite
        t0 = time.perf_counter()
        table = run_demo_evaluation(summary, args.out, suite=suite)
        folder = "eval" if suite == "synthetic" else f"eval_{suite}"
        print(f"\n{suite} evaluation suite ({time.perf_counter() - t0:.0f} s; full report: "
              f"{Path(args.out) / folder / 'results.md'}):")
        print(terminal_summary(table, table.attrs["primary"], table.attrs.get("baselines")))
    return 0
