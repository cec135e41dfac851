"""Pretraining configuration: the schema (nested dataclasses), its value checks and its presets.

Loading (YAML presets and files, ``base:`` chains, dotted overrides, typed coercion) is the one config
loader, :mod:`chadavit.config`. Precedence: dataclass defaults < preset YAML < command-line overrides. The
resolved config is saved in the run directory and inside every checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from chadavit import config as loader
from chadavit.config import ConfigError, field_names, to_plain
from chadavit.data.augment import AugmentConfig
from chadavit.precision import PRECISIONS
from chadavit.pretrain.cells import CellCropConfig

log = logging.getLogger("chadavit.pretrain.config")


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
        return to_plain(self)


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


def apply_override(cfg: PretrainConfig, item: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML: numbers, lists ``[1,2]``, booleans)."""
    loader.apply_override(cfg, *loader.parse_override(item), rename=_legacy_key)


# ------------------------------------------------------------------------------------------ presets
def list_presets() -> list[str]:
    """Pretraining presets in ``chadavit/configs`` (YAML files whose sections are pretraining sections)."""
    files = resources.files("chadavit.configs")
    allowed = set(field_names(PretrainConfig)) | {"base"}
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


def load_config(name_or_file: str | Mapping[str, Any] = "demo",
                overrides: Iterable[str] | Mapping[str, Any] = ()) -> PretrainConfig:
    """Resolve a preset name, YAML file or mapping plus overrides into a validated :class:`PretrainConfig`.

    A YAML file may name ``base: <preset or file>`` to start from another config. ``overrides`` are
    ``key=value`` strings (the command line) or a mapping of dotted keys to values (experiment files).
    """
    cfg = loader.load(PretrainConfig, name_or_file, overrides, known=list_presets, rename=_legacy_key)
    if cfg.name == "custom" and isinstance(name_or_file, str):
        cfg.name = Path(name_or_file).stem
    validate(cfg)
    return cfg


def config_from_dict(data: dict[str, Any]) -> PretrainConfig:
    cfg = loader.merge(PretrainConfig(), dict(data), rename=_legacy_key)
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
    errs += _model_problems(cfg.model)
    if errs:
        raise ConfigError("invalid config: " + "; ".join(errs))


def _model_problems(model: ModelConfig) -> list[str]:
    """``model.name`` and ``model.overrides`` checked now (typed, by the model config), not at model build."""
    from chadavit.models import get_config, list_models
    from chadavit.models.config import ModelConfigError

    if model.name not in list_models():
        return [f"model.name {model.name!r} is not a preset; presets: {', '.join(list_models())}"]
    if not isinstance(model.overrides, dict):
        return [f"model.overrides must be a mapping of model settings, got {model.overrides!r}"]
    overrides = dict(model.overrides)
    if overrides.get("channel_vocab") == "auto":  # filled with the data's stain names at training time
        overrides["channel_vocab"] = []
    try:
        get_config(model.name, **overrides)
    except ModelConfigError as exc:
        return [f"model.overrides: {exc}"]
    return []
