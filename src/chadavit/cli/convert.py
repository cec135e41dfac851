"""`chadavit convert-official CKPT OUT_DIR`: official weights -> our safetensors + JSON config."""

from __future__ import annotations

import argparse

from chadavit.cli.options import add_official_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-official", help="convert an official ChAda-ViT checkpoint to chadavit format",
                       description="Convert an official Lightning .ckpt (student or teacher) or a bare backbone "
                                   ".safetensors into model.safetensors + config.json, loadable with "
                                   "chadavit.load_pretrained / --model DIR.")
    p.add_argument("checkpoint", help="official .ckpt or backbone .safetensors, or hf:OWNER/NAME[@REVISION] "
                   "(head count and eps then come from the repository's config.json)")
    p.add_argument("out_dir", help="output folder")
    p.add_argument("--teacher", action="store_true", help="take the EMA teacher (momentum_backbone) of a .ckpt")
    add_official_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chadavit.models import save_pretrained
    from chadavit.models.spec import load_official

    if args.checkpoint.startswith("hf:"):
        from chadavit.models.hub import load_from_hub

        model = load_from_hub(args.checkpoint)
    else:
        opts = {k: v for k, v in (("num_heads", args.num_heads), ("final_norm_eps", args.final_norm_eps))
                if v is not None}
        model = load_official(args.checkpoint, opts, teacher=args.teacher)
    n_tensors = len(model.state_dict())
    n_params = sum(p.numel() for p in model.parameters())
    save_pretrained(model, args.out_dir, extra={"converted_from": str(args.checkpoint),
                                                "backbone": "teacher" if args.teacher else "student"})
    cfg = model.config
    print(f"converted {args.checkpoint} ({'teacher' if args.teacher else 'student'}): depth {cfg.depth}, "
          f"dim {cfg.embed_dim}, heads {cfg.num_heads}, final-norm eps {cfg.final_norm_eps:g}, {n_tensors} tensors, "
          f"{n_params:,} parameters -> {args.out_dir}")
    return 0
