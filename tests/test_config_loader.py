"""The one config loader (chadavit.config): typed coercion, dotted overrides, base chains, mappings, renames."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chadavit.config import ConfigError, load, parse_override, to_plain


@dataclass
class Inner:
    size: int = 64
    scale: tuple[float, float] = (0.4, 1.0)
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    name: str = "custom"
    lr: float = 1e-3
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    extra: dict = field(default_factory=dict)


def test_file_with_base_chain_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: base\ninner: {size: 32, names: [DNA]}\n")
    (tmp_path / "child.yaml").write_text(f"base: {tmp_path / 'base.yaml'}\nlr: 1e-2\ninner: {{size: 96}}\n")
    cfg = load(Outer, tmp_path / "child.yaml", ["flag=on", "inner.scale=[0.5, 1]", "extra.depth=2"])
    assert cfg.name == "base" and cfg.lr == 0.01 and cfg.flag is True  # YAML 1.1 "1e-2" string -> float
    assert cfg.inner.size == 96 and cfg.inner.names == ["DNA"] and cfg.inner.scale == (0.5, 1.0)
    assert cfg.extra == {"depth": 2}
    assert to_plain(cfg)["inner"] == {"size": 96, "scale": [0.5, 1.0], "names": ["DNA"]}


def test_relative_base_is_read_beside_the_file_that_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = tmp_path / "experiments"
    (exp / "sub").mkdir(parents=True)
    (exp / "common.yaml").write_text("name: common\nlr: 0.5\n")
    (exp / "sub" / "mid.yaml").write_text("base: ../common.yaml\ninner: {size: 48}\n")
    (exp / "run.yaml").write_text("base: sub/mid.yaml\nflag: true\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "common.yaml").write_text("name: WRONG\n")  # a same-named file in the working directory
    monkeypatch.chdir(elsewhere)
    cfg = load(Outer, exp / "run.yaml")
    assert cfg.name == "common" and cfg.lr == 0.5 and cfg.inner.size == 48 and cfg.flag is True
    (exp / "gone.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml does not exist"):
        load(Outer, exp / "gone.yaml")


def test_mapping_source_and_mapping_overrides_skip_the_string_round_trip() -> None:
    cfg = load(Outer, {"inner": {"names": ["a,b"]}}, {"inner.names": ["x=1", "y"], "name": "m"})
    assert cfg.inner.names == ["x=1", "y"] and cfg.name == "m"


@pytest.mark.parametrize(("overrides", "message"), [
    (["inner.sise=3"], r"unknown config key 'inner.sise'; valid keys in inner: size, scale, names"),
    (["inner.size=abc"], r"inner.size must be an integer, got 'abc'"),
    (["inner=3"], r"inner is a section; give sub-keys \(size, scale, names\)"),
    (["inner.scale=[1, 2, 3]"], r"inner.scale needs 2 values"),
    (["lr"], r"must look like key=value"),
])
def test_errors_name_the_key_and_what_is_allowed(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(Outer, {}, overrides)


def test_broken_yaml_and_renamed_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner: {size: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML"):
        load(Outer, bad)
    cfg = load(Outer, {"rate": 0.5}, rename=lambda sec, k, v: ("lr", v) if k == "rate" else (k, v))
    assert cfg.lr == 0.5
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])


@dataclass
class WithUnions:
    seed: int | None = None
    names: str | list[str] | None = None


def test_pep604_unions_are_coerced_like_optional() -> None:
    cfg = load(WithUnions, {"seed": 3.0, "names": [1, "b"]})
    assert cfg.seed == 3 and isinstance(cfg.seed, int) and cfg.names == ["1", "b"]
    assert load(WithUnions, {"seed": None}).seed is None
    with pytest.raises(ConfigError, match="seed must be an integer, got 'x'"):
        load(WithUnions, {"seed": "x"})
