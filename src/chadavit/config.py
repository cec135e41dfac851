"""The one configuration loader: YAML presets and files, ``base:`` chains, dotted overrides, typed dataclasses.

Every configurable part of chadavit is a tree of plain dataclasses (its schema). This module turns YAML text,
mappings and ``a.b.c=value`` strings into such a tree, checking each key against the schema and coercing each
value to the field's type, so that a misspelt key or a wrong type fails at once with the valid keys listed.
Precedence: dataclass defaults < the ``base:`` chain (outermost first) < the file < overrides.

Why own code instead of OmegaConf/Hydra: about 150 lines give typed, validated configs with errors that list the
valid keys, and no working-directory magic. Applications keep their schema and value checks; loading is here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from chadavit.errors import ChadavitError

T = TypeVar("T")
Rename = Callable[[str, str, Any], "tuple[str, Any] | None"]
"""``(section, key, value) -> (key, value)``, or None to drop the key: how older configs' keys are read today."""


class ConfigError(ChadavitError, ValueError):
    """A preset, file or override is invalid; the message says which key and what is allowed."""


def to_plain(v: Any) -> Any:
    """Dataclasses, dicts, lists and tuples as plain dicts and lists (what YAML and JSON write)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        v = dataclasses.asdict(v)
    if isinstance(v, dict):
        return {k: to_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    return v


def field_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _section_error(key: str, cls: Any, value: Any) -> ConfigError:
    return ConfigError(f"{key} is a section; give sub-keys ({', '.join(field_names(cls))}), not {value!r}")


def _coerce_union(value: Any, args: tuple[Any, ...], tp: Any, key: str) -> Any:
    if value is None and type(None) in args:
        return None
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) == 1:  # Optional[X]: X's own error says what is wrong
        return coerce(value, kinds[0], key)
    for a in args:
        if a is type(None):
            continue
        try:
            return coerce(value, a, key)
        except ConfigError:
            continue
    raise ConfigError(f"{key}: cannot use {value!r} as {tp}")


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return value.lower() in ("true", "yes", "1", "on")
    raise ConfigError(f"{key} must be true or false, got {value!r}")


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    return int(value)


def _as_float(value: Any, key: str) -> float:
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return float(value)


def _as_str(value: Any, key: str) -> str:
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return str(value)


_SCALARS: dict[type, Callable[[Any, str], Any]] = {bool: _as_bool, int: _as_int, float: _as_float, str: _as_str}


def _coerce_sequence(value: Any, origin: Any, args: tuple[Any, ...], key: str) -> Any:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v] if value else []
    if not isinstance(value, (list, tuple)):
        value = [value]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key} needs {len(args)} values, got {value!r}")
        return tuple(coerce(v, a, key) for v, a in zip(value, args))
    return [coerce(v, args[0], key) for v in value] if args else list(value)


def coerce(value: Any, tp: Any, key: str, rename: Rename | None = None) -> Any:
    """``value`` as type ``tp`` (a field's annotation), or a :class:`ConfigError` naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _section_error(key, tp, value)
        return merge(tp(), value, key, rename)
    if origin is typing.Union or origin is types.UnionType:  # Optional[int] and int | None
        return _coerce_union(value, args, tp, key)
    if tp in _SCALARS:
        return _SCALARS[tp](value, key)
    if origin in (list, tuple):
        return _coerce_sequence(value, origin, args, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    return value


def merge(obj: T, data: Mapping[str, Any], prefix: str = "", rename: Rename | None = None) -> T:
    """Set ``obj``'s fields from ``data`` (nested sections merge, other values replace), checking every key."""
    hints = typing.get_type_hints(type(obj))
    names = field_names(obj)
    for k0, v0 in data.items():
        renamed = rename(prefix, str(k0), v0) if rename else (str(k0), v0)
        if renamed is None:
            continue
        k, v = renamed
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(f"unknown config key {key!r}; valid keys{' in ' + prefix if prefix else ''}: "
                              f"{', '.join(names)}")
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise _section_error(key, cur, v)
            merge(cur, v, key, rename)
        else:
            setattr(obj, k, coerce(v, hints[k], key, rename))
    return obj


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)``, the value read as YAML (numbers, ``[1,2]``, booleans)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. train.epochs=5)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_override(cfg: Any, key: str, value: Any, rename: Rename | None = None) -> None:
    """Set the dotted ``key`` of ``cfg`` to ``value``; free-form mappings (``model.overrides.depth``) are entered."""
    parts = key.split(".")
    obj: Any = cfg
    for i, p in enumerate(parts[:-1]):
        if isinstance(obj, dict):
            obj = obj.setdefault(p, {})
            continue
        if not dataclasses.is_dataclass(obj) or p not in field_names(obj):
            where = ".".join(parts[:i])
            valid = field_names(obj) if dataclasses.is_dataclass(obj) else []
            raise ConfigError(f"unknown config key {'.'.join(parts[: i + 1])!r}; valid keys"
                              f"{' in ' + where if where else ''}: {', '.join(valid)}")
        obj = getattr(obj, p)
    if isinstance(obj, dict):
        obj[parts[-1]] = value
        return
    merge(obj, {parts[-1]: value}, ".".join(parts[:-1]), rename)


def read_yaml(name_or_file: str | Path, presets: str = "chadavit.configs",
              known: Callable[[], Iterable[str]] = lambda: ()) -> tuple[dict[str, Any], str]:
    """The mapping in a YAML file, or in the preset of that name in package ``presets``; and a label for errors."""
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        text, label = p.read_text(), str(p)
    else:
        f = resources.files(presets) / f"{name_or_file}.yaml"
        if not f.is_file():
            raise ConfigError(f"unknown config {name_or_file!r}: not a file and not a preset; presets: "
                              f"{', '.join(known())}")
        text, label = f.read_text(), str(name_or_file)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: top level must be a mapping of sections")
    return data, label


def _beside(base: Any, naming_file: Path | None) -> Any:
    """``base`` as a path beside ``naming_file`` when it is a relative path to a file there; else unchanged."""
    if not isinstance(base, str | Path) or naming_file is None or not naming_file.is_file() or Path(base).is_absolute():
        return base
    there = naming_file.parent / base
    return there if there.is_file() else base


def load(cls: type[T], source: str | Path | Mapping[str, Any],
         overrides: Iterable[str] | Mapping[str, Any] = (), *, presets: str = "chadavit.configs",
         known: Callable[[], Iterable[str]] = lambda: (), rename: Rename | None = None) -> T:
    """A ``cls`` tree from a preset name, a YAML file or a mapping, then ``overrides``.

    A file or mapping may name ``base: <preset or file>`` to start from another config (up to 8 deep). A relative
    file path in a file's ``base:`` is read beside that file when it is there (so a folder of experiment files
    works from any working directory), else as given.
    ``overrides`` are ``key=value`` strings or a mapping of dotted keys to values (no YAML round trip).
    """
    chain: list[tuple[dict[str, Any], str]] = []
    cur: Any = source
    while cur is not None:
        data, label = (dict(cur), "config") if isinstance(cur, Mapping) else read_yaml(cur, presets, known)
        chain.append((data, label))
        cur = _beside(data.pop("base", None), None if isinstance(cur, Mapping) else Path(label))
        if len(chain) > 8:
            raise ConfigError(f"config base chain too deep starting at {source}")
    cfg = cls()
    for data, label in reversed(chain):
        try:
            merge(cfg, data, rename=rename)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from exc
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for key, value in items:
        apply_override(cfg, key, value, rename)
    return cfg
