"""The shared option groups of ``cli/options.py``: one spelling of each option, one precision policy table."""

from __future__ import annotations

import argparse

import pytest

from chadavit.cli.main import build_parser
from chadavit.cli.options import DEFAULT_PRECISION, add_runtime_options


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize(("argv", "expected"), [
    (["embed", "x", "--out", "o.parquet"], DEFAULT_PRECISION["embed"]),
    (["eval"], DEFAULT_PRECISION["eval"]),
    (["pretrain"], None),  # the config's train.precision applies, whose default is the table's
    (["embed", "x", "--out", "o.parquet", "--precision", "bf16"], "bf16"),
])
def test_precision_defaults_come_from_the_one_table(argv: list[str], expected: str | None) -> None:
    assert build_parser().parse_args(argv).precision == expected
    assert DEFAULT_PRECISION == {"embed": "auto", "eval": "fp32", "pretrain": "auto"}  # the defaults users know


def test_pretrain_default_policy_matches_its_config() -> None:
    from chadavit.pretrain.config import TrainConfig

    assert TrainConfig().precision == DEFAULT_PRECISION["pretrain"]


@pytest.mark.parametrize("path", [("embed",), ("eval",), ("convert-official",)])
def test_model_group_reads_the_same_everywhere(path: tuple[str, ...]) -> None:
    opts = _options(_subparser(build_parser(), *path))
    for flag, kind in (("--num-heads", int), ("--final-norm-eps", float)):
        assert opts[flag].type is kind and opts[flag].default is None, (path, flag)
    reference = _options(_subparser(build_parser(), "embed"))
    assert opts["--num-heads"].help == reference["--num-heads"].help


def test_shared_options_are_declared_only_in_options_py() -> None:
    import re
    from pathlib import Path

    import chadavit.cli

    shared = ("--model", "--num-heads", "--final-norm-eps", "--device", "--precision", "--out", "--overwrite")
    pattern = re.compile(r'add_argument\(\s*"(' + "|".join(map(re.escape, shared)) + r')"')
    found = {f"{p.name}: {m.group(1)}" for p in Path(chadavit.cli.__file__).parent.glob("*.py")
             if p.name != "options.py" for m in pattern.finditer(p.read_text())}
    assert not found, f"declare these with the groups of cli/options.py: {sorted(found)}"


def test_an_unknown_command_has_no_precision_policy() -> None:
    with pytest.raises(KeyError):
        add_runtime_options(argparse.ArgumentParser(), "nonesuch")


@pytest.mark.parametrize(("argv", "expected"), [
    (["embed", "merge", "a.parquet", "--out", "o"], ["embed-merge", "a.parquet", "--out", "o"]),
    (["-v", "embed", "merge", "a.parquet"], ["-v", "embed-merge", "a.parquet"]),
    (["embed", "./merge", "--out", "o"], ["embed", "./merge", "--out", "o"]),  # a folder named merge
    (["embed", "plate", "merge"], ["embed", "plate", "merge"]),
    (["idr", "merge", "a"], ["idr", "merge", "a"]),
    ([], []),
])
def test_embed_merge_is_the_embed_merge_subcommand(argv: list[str], expected: list[str]) -> None:
    from chadavit.cli.main import expand_aliases

    assert expand_aliases(argv) == expected


def test_embed_merge_parses_as_its_own_command(capsys) -> None:
    from chadavit.cli.embed_merge import run_merge
    from chadavit.cli.main import expand_aliases

    args = build_parser().parse_args(expand_aliases(["embed", "merge", "a.parquet", "b.parquet", "-o", "m.parquet"]))
    assert args.func is run_merge and args.shards == ["a.parquet", "b.parquet"] and args.out == "m.parquet"
    with pytest.raises(SystemExit):  # options of embed that merge has no use for are not silently taken
        build_parser().parse_args(["embed-merge", "a.parquet", "--out", "m", "--crops", "full"])
    assert "unrecognized arguments: --crops" in capsys.readouterr().err
