"""One error handler for every command: a user's mistake is one line on stderr and exit status 2."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from chadavit.cli import main as cli
from chadavit.errors import ChadavitError


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    rc = cli.main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if "WARNING" not in line]
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("argv, expected", [
    (["data", "info", "{tmp}/nope"], "dataset directory does not exist"),
    (["data", "import", "{tmp}/nope", "--out", "{tmp}/o", "--multichannel"], "source folder not found"),
    (["experiment", "list", "{tmp}/nope.yaml"], "does not exist"),
    (["eval", "--suite", "nope", "--out", "{tmp}/e"], "neither a file nor a preset"),
    (["eval", "--seeds", "a,b", "--out", "{tmp}/e"], "--seeds expects comma-separated integers"),
    (["eval", "--set", "novalue", "--out", "{tmp}/e"], "--set expects VAR=VALUE"),
    (["pretrain", "not-an-override"], "must look like key=value"),
    (["convert-official", "{tmp}/nope.ckpt", "{tmp}/c"], "checkpoint file not found"),
    (["idr", "build", "--shard", "5/2", "--out", "{tmp}/i"], "--shard '5/2'"),
    (["idr", "stats", "{tmp}/nope"], "dataset directory does not exist"),
    (["embed", "{tmp}/nope", "--model", "random:chada_vit_nano", "--out", "{tmp}/x"], "not found"),
    (["embed", "{tmp}", "--model", "{tmp}/no_model", "--out", "{tmp}/x"], "no such checkpoint folder or file"),
])
def test_user_mistakes_are_one_line(argv: list[str], expected: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert expected in line


def test_eval_suite_with_an_unknown_adapter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\nseeds: [0]\ndatasets:\n  d:\n    adapter: nope\n"
                     "tasks:\n  - {name: t, dataset: d, protocol: knn, label: y}\n")
    line = _one_line_error(["eval", "--suite", str(suite), "--out", str(tmp_path / "e"), "--no-figures",
                            "--no-progress"], capsys)
    assert "unknown dataset adapter 'nope'" in line


def test_every_user_error_class_derives_from_the_base() -> None:
    from chadavit.batch import InvalidImageError
    from chadavit.data.dataset import DatasetError
    from chadavit.data.readers import ImageReadError, PatternError
    from chadavit.embed import ChannelError, EmbedError, SourceError
    from chadavit.evaluation.data import DatasetLayoutError, EvalInputError
    from chadavit.evaluation.suite import SuiteError
    from chadavit.experiments.spec import ExperimentError
    from chadavit.idr.builder import BuildError
    from chadavit.data.idr_client import IDRError
    from chadavit.idr.plan import PlanError, PlanFileNotFoundError
    from chadavit.models.config import ModelConfigError
    from chadavit.models.io import CheckpointError
    from chadavit.models.spec import ModelSpecError
    from chadavit.pretrain.checkpoint import ResumeError
    from chadavit.pretrain.config import ConfigError

    classes = [InvalidImageError, DatasetError, ImageReadError, PatternError, ChannelError, EmbedError, SourceError,
               DatasetLayoutError, SuiteError, ExperimentError, BuildError, IDRError, PlanError,
               PlanFileNotFoundError, ModelConfigError, CheckpointError, ModelSpecError, ResumeError, ConfigError,
               EvalInputError]
    assert all(issubclass(c, ChadavitError) for c in classes)
    # their former bases still hold, so `except ValueError` in callers keeps working
    assert issubclass(DatasetLayoutError, FileNotFoundError) and issubclass(IDRError, RuntimeError)
    assert issubclass(ConfigError, ValueError) and issubclass(ResumeError, RuntimeError)


def test_multi_line_message_is_printed_on_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def boom(args: object) -> int:
        raise ChadavitError("first line\n  second line")

    parser = cli.build_parser()
    args = parser.parse_args(["models"])
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(parser, args, boom))
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "error: first line second line\n"


class _Fixed:
    """A parser stand-in that returns ``args`` with ``func`` replaced."""

    def __init__(self, parser: object, args: object, func: object) -> None:
        self.args = args
        self.args.func = func  # type: ignore[attr-defined]

    def parse_args(self, argv: object) -> object:
        return self.args


def test_broken_pipe_exits_quietly(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """`chadavit models | head -1`: the reader went away; no traceback, exit 141 like other tools."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (head) has exited
    pipe = io.TextIOWrapper(io.FileIO(write_end, "w"), line_buffering=False)
    monkeypatch.setattr(sys, "stdout", pipe)
    try:
        rc = cli.main(["models"])
    finally:
        monkeypatch.undo()
    assert rc == 141
    assert "Traceback" not in capfd.readouterr().err
