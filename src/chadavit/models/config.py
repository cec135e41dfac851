"""Architecture configuration of the channel-adaptive encoders, saved next to their weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
    # where the weights came from (e.g. "hf:nicoboou/chadavit16-moyen") and the commit they were read at
    source: str = ""
    revision: str = ""
    normalization_stats: dict[str, list[float]] = field(default_factory=dict)  # "dataset": channel -> [low, high]

    def __post_init__(self) -> None:
        check_num_heads(self.embed_dim, self.num_heads)
        if self.channel_embedding not in ("slot", "identity", "none"):
            raise ModelConfigError("channel_embedding must be 'slot', 'identity' or 'none', "
                                   f"got {self.channel_embedding!r}")
        if self.block not in ("prenorm", "legacy"):
            raise ModelConfigError(f"block must be 'prenorm' or 'legacy', got {self.block!r}")
        if self.normalization not in NORMALIZATION_METHODS:
            raise ModelConfigError(f"normalization must be one of {NORMALIZATION_METHODS}, got {self.normalization!r}")
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
