"""`chadavit pretrain`: DINO pretraining from a YAML preset or file plus dotted overrides."""

from __future__ import annotations

import argparse

from chadavit.cli.options import add_runtime_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain", help="DINO pretraining on heterogeneous-channel images (CPU or torchrun multi-GPU)",
        description="Self-supervised DINO pretraining. Runs on one CPU or GPU as is; launch with torchrun for "
                    "several processes/GPUs/nodes (e.g. torchrun --nproc_per_node=8 -m chadavit.cli.main "
                    "pretrain --config base). Resumes automatically from OUT_DIR/checkpoint.pt; Ctrl-C or SIGTERM "
                    "saves a checkpoint first. Ends with a short report (full numbers in OUT_DIR/summary.json); "
                    "exit status 1 when train.stop_on_collapse stopped a collapsed run.",
        epilog="examples: chadavit pretrain --config demo train.epochs=2 train.out_dir=runs/try  |  "
               "chadavit pretrain --config my.yaml data.paths=[/data/idr] model.name=chada_vit_small  |  "
               "chadavit pretrain --list")
    p.add_argument("--config", default="demo", help="preset name (see --list) or a YAML file (default: demo)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=1e-3")
    add_runtime_options(p, "pretrain", device=None,
                        precision_help="training precision (same as train.precision=...; bf16: autocast for the "
                        "forward, while weights, optimiser state and DINO loss stay fp32; auto trains in fp32 on "
                        "CPUs, where bf16 measured no faster)")
    p.add_argument("--init", metavar="SPEC",
                   help="start from this model instead of random weights (same as train.init=SPEC): a run folder, "
                        "DIR with config.json, hf:OWNER/NAME, official:PATH, PATH.safetensors; combine with "
                        "train.layer_decay=0.75 and/or train.freeze_blocks=N (docs/pretraining.md)")
    p.add_argument("--list", action="store_true", help="list presets and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from chadavit.pretrain.config import list_presets, load_config

    if args.list:
        print("\n".join(list_presets()))
        return 0
    overrides = list(args.overrides) + ([f"train.precision={args.precision}"] if args.precision else []) \
        + ([f"train.init={args.init}"] if args.init else [])
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    from chadavit.experiments.pretraining import pretrain
    from chadavit.pretrain.distributed import cleanup

    try:
        summary = pretrain(cfg)
    finally:
        cleanup()
    if summary.get("world_size", 1) == 1 or "backbone" in summary:
        from chadavit.pretrain.report import format_run_summary

        print(format_run_summary(summary))
    return 1 if summary.get("stopped") == "collapse" else 0
