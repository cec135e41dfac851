"""Pretraining configuration: nested dataclasses, YAML presets and dotted ``key=value`` overrides.

Why own code instead of OmegaConf/Hydra: ~100 lines give typed, validated configs with errors that
list the valid keys, and no working-directory magic. Precedence: dataclass defaults < preset YAML <
command-line overrides. The resolved config is saved in the run directory and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from chadavit.data.augment import AugmentConfig
from chadavit.errors import ChadavitError
from chadavit.precision import PRECISIONS
from chadavit.pretrain.cells import CellCropConfig

log = logging.getLogger("chadavit.pretrain.config")


class ConfigError(ChadavitError, ValueError):
    """A preset, file or override is invalid; the message says which key and what is allowed."""


@dataclass
class SyntheticConfig:
    """Synthetic studies generated into the run directory (``studies`` 0 = none)."""

    studies: int = 0
    channel_sets: list[list[str]] = field(default_factory=list)  # explicit channel sets; else drawn at random
    images_per_study: int = 200
    size: int = 64
    seed: int = 0


@dataclass
class DataFilterConfig:
    """Which images of the datasets are used (``chadavit.data.filters``); empty = all."""

    n_channels: list[int] = field(default_factory=list)  # keep images with one of these channel counts
    channel_names: list[str] = field(default_factory=list)  # keep images with exactly these channels (in order)


@dataclass
class DataConfig:
    """Where images come from and how batches are built."""

    paths: list[str] = field(default_factory=list)  # dataset dirs; "builtin:demo" = bundled real demo crops
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    filter: DataFilterConfig = field(default_factory=DataFilterConfig)  # e.g. n_channels=[3] for a 3-channel ViT
    split_channels: bool = False  # every channel becomes its own image (One-Channel ViT training)
    cells: CellCropConfig = field(default_factory=CellCropConfig)  # single-cell views cut from data.paths fields
    batch_size: int = 64  # per process
    num_workers: int = 2
    normalization: str = "auto"  # "auto" = what the model config records
    preload_mb: float = 256  # datasets up to this size are held in memory by each loader worker
    loader_benchmark_steps: int = 20  # batches timed before training to report loader img/s (0 = off)


@dataclass
class ModelConfig:
    name: str = "chada_vit_nano"
    overrides: dict[str, Any] = field(default_factory=dict)  # ChadaViTConfig fields, e.g. {depth: 2}


@dataclass
class DinoConfig:
    """DINO head and loss (defaults from DINO ViT-S/16 unless the docs say otherwise)."""

    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    norm_last_layer: bool = True
    student_temp: float = 0.1
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    warmup_teacher_temp_epochs: float = 30
    center_momentum: float = 0.9
    momentum_teacher: float = 0.996
    freeze_last_layer_epochs: float = 1
    koleo_weight: float = 0.0  # KoLeo regulariser on the student's global-crop CLS (DINOv2 uses 0.1); 0 = off
    mask_ratio: float = 0.0  # masked-patch reconstruction: share of student global-crop patches blanked; 0 = off
    mask_weight: float = 1.0  # weight of the reconstruction loss beside the DINO loss


@dataclass
class OptimConfig:
    """AdamW with per-iteration warm-up + cosine lr and cosine weight decay; ``lr`` is per 256 images."""

    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_epochs: float = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float = 3.0  # 0 = off


@dataclass
class TrainConfig:
    epochs: int = 100
    max_steps: int = 0  # stop after this many steps of the schedule (0 = all epochs); schedules still span `epochs`
    seed: int = 0
    out_dir: str = "runs/pretrain"
    resume: bool = True  # continue from out_dir/checkpoint.pt when it exists
    checkpoint_every: int = 500  # steps; a checkpoint is also written at the end
    log_every: int = 10
    device: str = "auto"  # auto | cpu | cuda | cuda:1
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU: measured faster there) | fp32 | bf16; chadavit.precision
    compile: bool = False
    progress: bool = True
    progress_every_s: float = 30.0  # when stdout is not a terminal: a plain progress line this often (no tqdm bar)
    stop_on_collapse: bool = False  # stop (checkpoint saved) once collapse is sustained; otherwise warn once
    collapse_patience: int = 5  # logging intervals in a row that must look collapsed before it is called
    threads: int = 0  # torch intra-op threads per process (0 = auto: free cores after loader workers)
    init: str = ""  # model spec to start the backbone from (run folder, hf:, official:, .safetensors); "" = random
    layer_decay: float = 1.0  # layer-wise lr decay: block i of L gets lr * layer_decay^(L + 1 - i); 1 = off
    freeze_blocks: int = 0  # patch/position/channel embeddings and the first N blocks are not trained


@dataclass
class CheckConfig:
    """The learning check: kNN on frozen CLS embeddings of held-out synthetic cells (localisation class)."""

    enabled: bool = False
    channels: list[str] = field(default_factory=lambda: ["DNA", "protein"])
    n_train: int = 400
    n_test: int = 400
    size: int = 64
    seed: int = 12345
    k: int = 10
    random_inits: int = 3  # random-init baselines averaged (their accuracy varies by several points)


@dataclass
class PretrainConfig:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dino: DinoConfig = field(default_factory=DinoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    check: CheckConfig = field(default_factory=CheckConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# ------------------------------------------------------------------------------------------ coercion
def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} is a section; give sub-keys ({', '.join(_field_names(tp))}), not {value!r}")
        return _merge(tp(), value, key)
    if origin is typing.Union or str(origin) == "types.UnionType":
        for a in args:
            if a is type(None) and value is None:
                return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: cannot use {value!r} as {tp}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v] if value else []
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], key) for v in value)
            if len(value) != len(args):
                raise ConfigError(f"{key} needs {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, key) for v, a in zip(value, args))
        return [_coerce(v, args[0], key) for v in value] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    return value


def _field_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


_LEGACY_AMP = {"auto": "auto", "bf16": "bf16", "off": "fp32"}


def _legacy_key(prefix: str, k: str, v: Any) -> tuple[str, Any] | None:
    """Keys of older configs (saved in run folders, so ``resume`` must read them) in today's terms.

    ``train.amp`` (auto | bf16 | off) became ``train.precision`` (auto | bf16 | fp32); an empty
    ``train.precision`` meant "use amp". None = drop the key.
    """
    if prefix != "train":
        return k, v
    if k == "amp":
        v = "off" if v is False else v  # YAML 1.1 reads a bare `off` as false
        if v not in _LEGACY_AMP:
            raise ConfigError(f"train.amp (now train.precision) must be auto, bf16 or off, not {v!r}")
        log.warning("config key train.amp is deprecated: read as train.precision=%s", _LEGACY_AMP[v])
        return "precision", _LEGACY_AMP[v]
    if k == "precision" and v in ("", None):
        return None
    return k, v


def _merge(obj: Any, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(type(obj))
    names = _field_names(obj)
    for k0, v0 in data.items():
        renamed = _legacy_key(prefix, str(k0), v0)
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
                raise ConfigError(f"{key} is a section; give sub-keys ({', '.join(_field_names(cur))}), not {v!r}")
            _merge(cur, v, key)
        else:
            setattr(obj, k, _coerce(v, hints[k], key))
    return obj


def apply_override(cfg: PretrainConfig, item: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML: numbers, lists ``[1,2]``, booleans)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. train.epochs=5)")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    obj: Any = cfg
    for i, p in enumerate(parts[:-1]):
        if isinstance(obj, dict):  # free-form mapping (model.overrides.depth=2)
            obj = obj.setdefault(p, {})
            continue
        if not dataclasses.is_dataclass(obj) or p not in _field_names(obj):
            where = ".".join(parts[:i])
            valid = _field_names(obj) if dataclasses.is_dataclass(obj) else []
            raise ConfigError(f"unknown config key {'.'.join(parts[: i + 1])!r}; valid keys"
                              f"{' in ' + where if where else ''}: {', '.join(valid)}")
        obj = getattr(obj, p)
    last = parts[-1]
    if isinstance(obj, dict):
        obj[last] = value
        return
    _merge(obj, {last: value}, ".".join(parts[:-1]))


# ------------------------------------------------------------------------------------------ presets
def list_presets() -> list[str]:
    """Pretraining presets in ``chadavit/configs`` (YAML files whose sections are pretraining sections)."""
    files = resources.files("chadavit.configs")
    allowed = set(_field_names(PretrainConfig)) | {"base"}
    out = []
    for p in files.iterdir():
        if not p.name.endswith(".yaml"):
            continue
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and set(data) <= allowed:
            out.append(p.name[: -len(".yaml")])
    return sorted(out)


def _read_yaml(name_or_file: str) -> tuple[dict[str, Any], str]:
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        text, label = p.read_text(), str(p)
    else:
        f = resources.files("chadavit.configs") / f"{name_or_file}.yaml"
        if not f.is_file():
            raise ConfigError(f"unknown config {name_or_file!r}: not a file and not a preset; presets: "
                              f"{', '.join(list_presets())}")
        text, label = f.read_text(), name_or_file
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: top level must be a mapping of sections")
    return data, label


def load_config(name_or_file: str = "demo", overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """Resolve a preset name or YAML file plus overrides into a validated :class:`PretrainConfig`.

    A YAML file may name ``base: <preset or file>`` to start from another config.
    """
    chain: list[tuple[dict[str, Any], str]] = []
    cur: str | None = name_or_file
    while cur is not None:
        data, label = _read_yaml(cur)
        chain.append((data, label))
        cur = data.pop("base", None)
        if len(chain) > 8:
            raise ConfigError(f"config base chain too deep starting at {name_or_file}")
    cfg = PretrainConfig()
    for data, label in reversed(chain):
        try:
            _merge(cfg, data)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from exc
    if cfg.name == "custom":
        cfg.name = Path(name_or_file).stem
    for item in overrides:
        apply_override(cfg, item)
    validate(cfg)
    return cfg


def config_from_dict(data: dict[str, Any]) -> PretrainConfig:
    cfg = _merge(PretrainConfig(), dict(data))
    validate(cfg)
    return cfg


def validate(cfg: PretrainConfig) -> None:
    """Value checks that would otherwise fail late (after data generation or model build)."""
    errs = []
    if cfg.data.batch_size < 1:
        errs.append("data.batch_size must be >= 1")
    if cfg.data.num_workers < 0:
        errs.append("data.num_workers must be >= 0")
    if cfg.data.normalization not in ("auto", "percentile", "dtype_range", "dataset", "none"):
        errs.append("data.normalization must be auto, percentile, dtype_range, dataset or none")
    if cfg.train.epochs < 1:
        errs.append("train.epochs must be >= 1")
    if cfg.train.log_every < 1 or cfg.train.collapse_patience < 1 or cfg.train.progress_every_s < 0:
        errs.append("train.log_every and train.collapse_patience must be >= 1, train.progress_every_s >= 0")
    if cfg.train.precision not in PRECISIONS:
        errs.append("train.precision must be auto, fp32 or bf16")
    if cfg.augment.n_local < 0:
        errs.append("augment.n_local must be >= 0")
    for k in ("global_scale", "local_scale"):
        lo, hi = getattr(cfg.augment, k)
        if not 0 < lo <= hi <= 1:
            errs.append(f"augment.{k} must satisfy 0 < low <= high <= 1")
    if cfg.augment.intensity_shift < 0 or not 0 < cfg.augment.gamma[0] <= cfg.augment.gamma[1]:
        errs.append("augment.intensity_shift must be >= 0 and augment.gamma must satisfy 0 < low <= high")
    if not 0 <= cfg.augment.channel_subsample_p <= 1:
        errs.append("augment.channel_subsample_p must be in [0, 1]")
    if cfg.dino.out_dim < 2 or cfg.dino.bottleneck_dim < 1:
        errs.append("dino.out_dim must be >= 2 and dino.bottleneck_dim >= 1")
    if not 0 <= cfg.dino.momentum_teacher <= 1:
        errs.append("dino.momentum_teacher must be in [0, 1]")
    if cfg.optim.lr <= 0:
        errs.append("optim.lr must be > 0")
    if not 0 < cfg.train.layer_decay <= 1 or cfg.train.freeze_blocks < 0:
        errs.append("train.layer_decay must be in (0, 1] and train.freeze_blocks >= 0")
    if not 0 <= cfg.dino.mask_ratio < 1 or cfg.dino.koleo_weight < 0:
        errs.append("dino.mask_ratio must be in [0, 1) and dino.koleo_weight >= 0")
    if errs:
        raise ConfigError("invalid config: " + "; ".join(errs))
