"""ChAda-ViT size presets. Parameter counts (10 slots, 224 px) are listed in the README."""

from __future__ import annotations

from chadavit.models.chada_vit import ChAdaViT
from chadavit.models.config import ChadaViTConfig
from chadavit.models.registry import register_architecture, register_model

register_architecture("chada_vit")(ChAdaViT)


@register_model
def chada_vit_nano() -> ChadaViTConfig:
    """A very small model for CPU demos and tests (64 px crops)."""
    return ChadaViTConfig(embed_dim=64, depth=4, num_heads=4, mlp_dim=256, img_size=64)


@register_model
def chada_vit_tiny() -> ChadaViTConfig:
    """ViT-Tiny sizes (D 192, 3 heads, MLP 768)."""
    return ChadaViTConfig(embed_dim=192, depth=12, num_heads=3, mlp_dim=768)


@register_model
def chada_vit_small() -> ChadaViTConfig:
    """ViT-Small sizes (D 384, 6 heads, MLP 1536)."""
    return ChadaViTConfig(embed_dim=384, depth=12, num_heads=6, mlp_dim=1536)


@register_model
def chada_vit_moyen() -> ChadaViTConfig:
    """The official ChAda-ViT size: D 192, depth 12, 12 heads, MLP 2048 (with modern pre-norm blocks)."""
    return ChadaViTConfig(embed_dim=192, depth=12, num_heads=12, mlp_dim=2048)


@register_model
def chada_vit_base() -> ChadaViTConfig:
    """ViT-Base sizes (D 768, 12 heads, MLP 3072)."""
    return ChadaViTConfig(embed_dim=768, depth=12, num_heads=12, mlp_dim=3072)
