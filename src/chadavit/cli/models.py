"""`chadavit models`: list the registered presets with their parameter counts."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model presets and their parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="glob on preset names")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from chadavit.models import create_model, list_models

    print(f"{'preset':<26} {'params':>12}  dim depth heads mlp  channels")
    for name in list_models(args.pattern):
        with torch.device("meta"):
            model = create_model(name)
        cfg = model.config
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<26} {n:>12,}  {cfg.embed_dim:>3} {cfg.depth:>5} {cfg.num_heads:>5} {cfg.mlp_dim:>4}  "
              f"{cfg.channel_embedding}")
    return 0
