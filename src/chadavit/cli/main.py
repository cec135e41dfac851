"""Entry point of the `chadavit` console command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to the function that runs it. Heavy imports happen inside
those functions so that ``chadavit --help`` stays fast.

Errors are handled here, once, for every command: a :class:`chadavit.errors.ChadavitError` (bad
input, settings or environment) prints ``error: <message>`` on one line and exits with status 2;
a closed output pipe (``chadavit ... | head``) ends the command quietly. Command modules do not
catch these themselves.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence

from chadavit.errors import ChadavitError
from chadavit.version import __version__

SUBCOMMAND_MODULES = ("demo", "pretrain", "data", "models", "convert", "embed", "embed_merge", "eval", "idr",
                      "experiment", "datasets", "push", "profile")
# two-word spellings of a subcommand: ``chadavit embed merge ...`` is ``chadavit embed-merge ...``
ALIASES = {("embed", "merge"): "embed-merge"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chadavit",
        description="Channel-adaptive ViTs for microscopy images with any number of channels.",
    )
    parser.add_argument("--version", action="version", version=f"chadavit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        if importlib.util.find_spec(f"chadavit.cli.{name}") is not None:
            importlib.import_module(f"chadavit.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(expand_aliases(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's final flush
        return rc
    except ChadavitError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 141  # what shell tools report when the reader of their output went away (128 + SIGPIPE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def expand_aliases(argv: list[str]) -> list[str]:
    """``[-v] embed merge ...`` -> ``[-v] embed-merge ...`` (see ``ALIASES``); any other command line as it is."""
    i = next((k for k, a in enumerate(argv) if not a.startswith("-")), len(argv))  # the command (-v takes no value)
    name = ALIASES.get(tuple(argv[i:i + 2]))
    return argv if name is None else [*argv[:i], name, *argv[i + 2:]]


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on a single line (a multi-line message would read as a traceback)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or closed: nothing to flush
        pass


if __name__ == "__main__":
    sys.exit(main())
