"""`chadavit push MODEL_DIR OWNER/NAME`: publish a checkpoint folder on the Hugging Face Hub."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="publish a model folder on the Hugging Face Hub",
                       description="Upload config.json + model.safetensors of a save_pretrained folder (e.g. from "
                                   "convert-official or pretrain) to a model repository, created if missing. It "
                                   "loads back with --model hf:OWNER/NAME. Uses HF_TOKEN / `hf auth login` and "
                                   "HF_ENDPOINT.")
    p.add_argument("model_dir", help="folder with config.json and model.safetensors")
    p.add_argument("repo", help="OWNER/NAME of the model repository")
    p.add_argument("--revision", help="branch to commit to (default: main)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--message", default="Upload chadavit model", help="commit message")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chadavit.models.hub import push_folder

    url = push_folder(args.model_dir, args.repo, revision=args.revision, private=args.private,
                      commit_message=args.message)
    print(f"pushed {args.model_dir} to {args.repo}: {url}\nload it with --model hf:{args.repo}")
    return 0
