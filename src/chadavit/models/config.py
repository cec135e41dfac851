"""Architecture configuration of the channel-adaptive encoders, saved next to their weights."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chadavit.config import ConfigError, coerce
from chadavit.data.normalize import NORMALIZATION_METHODS
from chadavit.errors import ChadavitError

ChannelEmbedding = Literal["slot", "identity", "none"]
BlockType = Literal["prenorm", "legacy"]


class ModelConfigError(ChadavitError, ValueError):
    """Architecture settings that cannot build a model (e.g. a head count that does not divide the width)."""


def valid_head_counts(embed_dim: int) -> list[int]:
    """The head counts an ``embed_dim`` allows: its divisors."""
    return [d for d in range(1, embed_dim + 1) if embed_dim % d == 0]


def check_num_heads(embed_dim: int, num_heads: int) -> None:
    """Refuse a head count that does not divide the width, listing the ones that do."""
    if num_heads < 1 or embed_dim % num_heads:
        raise ModelConfigError(f"num_heads {num_heads} does not divide the embedding width {embed_dim}; valid head "
                               f"counts: {', '.join(map(str, valid_head_counts(embed_dim)))}")


_POSITIVE = ("embed_dim", "depth", "num_heads", "mlp_dim", "patch_size", "img_size", "in_chans", "num_slots")


def _check_types(cfg: Any) -> None:
    """Coerce each field to its declared type with the one config rule (:func:`chadavit.config.coerce`).

    Every way a config is made (presets, ``key=value`` overrides in a ``--model`` spec, ``config.json``)
    passes here, so a wrong value is one :class:`ModelConfigError` naming the key, never a ``TypeError``
    or ``ZeroDivisionError`` from deep inside the model.
    """
    if isinstance(cfg.channel_vocab, str):  # the loader would read "auto" as ["auto"]: a vocabulary is a list
        raise ModelConfigError(f"channel_vocab must be a list of channel names, got {cfg.channel_vocab!r}")
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        try:
            setattr(cfg, f.name, coerce(getattr(cfg, f.name), hints[f.name], f.name))
        except ConfigError as exc:
            raise ModelConfigError(str(exc)) from None
    for key in _POSITIVE:
        if getattr(cfg, key) < 1:
            raise ModelConfigError(f"{key} must be a positive integer, got {getattr(cfg, key)}")
    if cfg.crop_size < 0:
        raise ModelConfigError(f"crop_size must be 0 (not recorded) or a positive integer, got {cfg.crop_size}")
    if not (cfg.norm_eps > 0 and cfg.final_norm_eps > 0):
        raise ModelConfigError(f"norm_eps and final_norm_eps must be positive, got {cfg.norm_eps}, "
                               f"{cfg.final_norm_eps}")
    if not 0 <= cfg.drop_path_rate < 1:
        raise ModelConfigError(f"drop_path_rate must be in [0, 1), got {cfg.drop_path_rate}")


@dataclass
class ChadaViTConfig:
    """Everything needed to rebuild a model; stored as JSON beside ``model.safetensors``.

    ``block="legacy"`` reproduces the official layer arithmetic (post-norm with double ``norm1``,
    ReLU, feed-forward 2048) for converted official weights; ``"prenorm"`` is the default for new
    models. ``normalization`` records how pixels must be scaled for this model (see
    :mod:`chadavit.data.normalize`).
    """

    architecture: str = "chada_vit"
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 2048
    patch_size: int = 16
    img_size: int = 224
    in_chans: int = 1
    channel_embedding: ChannelEmbedding = "slot"
    num_slots: int = 10
    channel_vocab: list[str] = field(default_factory=list)
    block: BlockType = "prenorm"
    act: Literal["gelu", "relu"] = "gelu"
    norm_eps: float = 1e-6
    final_norm_eps: float = 1e-6
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    pooling: Literal["mean", "concat"] = "mean"
    normalization: str = "percentile"
    # side in source pixels of the crops it was trained on (a `plate` run's data.cells.size); embed crops at
    # this size by default; 0 = not recorded (crops are the input size)
    crop_size: int = 0
    # where the weights came from (e.g. "hf:nicoboou/chadavit16-moyen") and the commit they were read at
    source: str = ""
    revision: str = ""
    normalization_stats: dict[str, list[float]] = field(default_factory=dict)  # "dataset": channel -> [low, high]

    def __post_init__(self) -> None:
        _check_types(self)
        check_num_heads(self.embed_dim, self.num_heads)
        if self.channel_embedding not in ("slot", "identity", "none"):
            raise ModelConfigError("channel_embedding must be 'slot', 'identity' or 'none', "
                                   f"got {self.channel_embedding!r}")
        if self.block not in ("prenorm", "legacy"):
            raise ModelConfigError(f"block must be 'prenorm' or 'legacy', got {self.block!r}")
        if self.normalization not in NORMALIZATION_METHODS:
            raise ModelConfigError(f"normalization must be one of {NORMALIZATION_METHODS}, got {self.normalization!r}")
        if self.act not in ("gelu", "relu"):
            raise ModelConfigError(f"act must be 'gelu' or 'relu', got {self.act!r}")
        if self.pooling not in ("mean", "concat"):
            raise ModelConfigError(f"pooling must be 'mean' or 'concat', got {self.pooling!r}")
        if self.img_size % self.patch_size:
            raise ModelConfigError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChadaViTConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelConfigError(f"unknown model config key(s) {unknown}; valid keys: {sorted(names)}")
        return cls(**data)

    def replace(self, **overrides: Any) -> ChadaViTConfig:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ModelConfigError(f"unknown model config key(s) {unknown}; valid keys: {sorted(names)}")
        return dataclasses.replace(self, **overrides)


def channel_vocabulary(model_config: object) -> set[str] | None:
    """The channel names an identity-embedding model knows, or ``None`` for slot (positional) models and
    anything that is not a channel-adaptive config."""
    if getattr(model_config, "channel_embedding", "slot") != "identity":
        return None
    vocab = getattr(model_config, "channel_vocab", None) or ()
    if isinstance(vocab, Mapping):
        return {str(k) for k in vocab}
    return {str(v) for v in vocab}
