"""Option groups shared by several commands: the model, the runtime (device and precision) and the output.

Each command adds the groups it has with the functions below, so that an option reads and behaves the same
everywhere. No torch here: building the parser must stay fast (``benchmarks/bench_cli_startup.py``).

The precision policy lives in :data:`DEFAULT_PRECISION`, the one table of per-command defaults.
"""

from __future__ import annotations

import argparse

from chadavit.precision import PRECISIONS

# The default --precision of each command, in one place (bf16/fp32 as chadavit.precision resolves them):
# - embed: auto. Users' features are compared within one run; bf16 where the CPU (AMX / AVX-512 BF16) or GPU
#   computes it natively is faster, else fp32.
# - eval: fp32. Benchmark tables must be reproducible across machines.
# - pretrain: auto (bf16 autocast on CUDA, fp32 on CPUs, where bf16 training measured no faster). The flag
#   overrides train.precision; left out, the config's value (whose default is this one) applies.
DEFAULT_PRECISION = {"embed": "auto", "eval": "fp32", "pretrain": "auto"}

PRECISION_HELP = {
    "auto": "bf16 where the CPU (AMX / AVX-512 BF16) or GPU computes it natively, else fp32",
    "fp32": "reproducible across machines",
    "bf16": "bf16 compute, fp32 where the hardware lacks it",
}


def default_precision(command: str) -> str:
    """The default ``--precision`` of ``command`` (see :data:`DEFAULT_PRECISION`)."""
    return DEFAULT_PRECISION[command]


def add_model_options(p: argparse._ActionsContainer, *, help: str, repeat: bool = False,
                      short: bool = False) -> None:
    """``--model`` (once, or repeated into ``models`` with ``repeat``) and the official checkpoints' options."""
    flags = ("--model", "-m") if short else ("--model",)
    if repeat:
        p.add_argument(*flags, action="append", dest="models", metavar="SPEC", default=None, help=help)
    else:
        p.add_argument(*flags, help=help)
    add_official_options(p)


def add_official_options(p: argparse._ActionsContainer) -> None:
    """``--num-heads`` and ``--final-norm-eps``: what an official checkpoint does not store."""
    p.add_argument("--num-heads", type=int, default=None,
                   help="attention heads of an official checkpoint (not stored in it; default 12, the released "
                        "Moyen model; see docs/models.md)")
    p.add_argument("--final-norm-eps", type=float, default=None,
                   help="final LayerNorm eps of an official checkpoint (not stored in it; default 1e-5; the "
                        "training code used 1e-6)")


def add_runtime_options(p: argparse._ActionsContainer, command: str, *, device: str | None = "auto",
                        device_help: str | None = None, precision_help: str = "numeric precision") -> None:
    """``--device`` (left out where ``device`` is None) and ``--precision`` with the command's default policy.

    Pretraining's flag defaults to None (the config's ``train.precision`` then applies; its default is the
    table's); the others default to the table's value.
    """
    if device is not None:
        p.add_argument("--device", default=device,
                       help=device_help or f"auto (CUDA if available), cpu, cuda, cuda:1, mps (default: {device})")
    policy = default_precision(command)
    p.add_argument("--precision", default=None if command == "pretrain" else policy, choices=PRECISIONS,
                   help=f"{precision_help}: {' | '.join(PRECISIONS)} (default {policy}: {PRECISION_HELP[policy]})")


def add_output_options(p: argparse._ActionsContainer, *, help: str, required: bool = False,
                       default: str | None = None, short: bool = False, overwrite: str | None = None,
                       type: type | None = None) -> None:
    """``--out`` and, where the command can replace an output (``overwrite`` is its help), ``--overwrite``."""
    flags = ("--out", "-o") if short else ("--out",)
    p.add_argument(*flags, required=required, default=default, type=type, help=help)
    if overwrite is not None:
        p.add_argument("--overwrite", action="store_true", help=overwrite)
