"""Fixtures for Hub tests: a local Hub mirror on 127.0.0.1, an empty cache, and official-layout weights."""

from __future__ import annotations

import io
import json

import pytest
import torch
from safetensors.torch import save as save_bytes

from chadavit.models.catalog import build_model
from chadavit.models.config import ChadaViTConfig
from chadavit.models.official import _BLOCK_RENAMES
from tests.hub.mirror import HubMirror

pytest.importorskip("huggingface_hub", reason="huggingface_hub is a core dependency; reinstall chadavit")


@pytest.fixture()
def mirror(tmp_path, monkeypatch):
    """A running mirror, with HF_ENDPOINT pointing at it and a fresh HF_HUB_CACHE."""
    with HubMirror() as m:
        monkeypatch.setenv("HF_ENDPOINT", m.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield m


def official_model(embed_dim: int = 32, depth: int = 2, num_heads: int = 4, mlp_dim: int = 64, img_size: int = 32,
                   final_norm_eps: float = 1e-5, seed: int = 0) -> torch.nn.Module:
    """A random model with the official architecture (legacy blocks, 10 slots)."""
    torch.manual_seed(seed)
    cfg = ChadaViTConfig(embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_dim=mlp_dim, img_size=img_size,
                         channel_embedding="slot", num_slots=10, block="legacy", act="relu", norm_eps=1e-5,
                         final_norm_eps=final_norm_eps, normalization="dtype_range")
    return build_model(cfg).eval()


def to_official_state(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Our state dict renamed and reshaped to the official key names (the inverse of the converter)."""
    inverse = {v: k for k, v in _BLOCK_RENAMES.items()}
    d = model.config.embed_dim
    out = {}
    for k, v in model.state_dict().items():
        if k == "cls_token":
            out["cls_token"] = v.reshape(1, 1, d)
        elif k == "pos_embed":
            out["pos_embed"] = v.reshape(1, 1, -1, d)
        elif k == "channel_embed.weight":
            out["channel_token"] = v.reshape(1, v.shape[0], 1, d)
        elif k.startswith("patch_embed.proj."):
            out["token_learner.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("blocks."):
            i, rest = k.split(".", 2)[1:]
            out[f"blocks.{i}.{inverse[rest]}"] = v
        else:
            out[k] = v
    return {prefix + k: v.contiguous().clone() for k, v in out.items()}


def official_repo_files(model: torch.nn.Module, prefix: str = "model.", **config_extra: object) -> dict[str, bytes]:
    """``config.json`` + ``model.safetensors`` as the official Hub release lays them out."""
    c = model.config
    cfg = {"model_type": "chada_vit", "embed_dim": c.embed_dim, "num_heads": c.num_heads, "depth": c.depth,
           "max_number_channels": c.num_slots, "in_chans": 1, "patch_size": c.patch_size, "img_size": [c.img_size],
           **config_extra}
    return {"config.json": json.dumps(cfg).encode(), "model.safetensors": save_bytes(to_official_state(model, prefix)),
            "README.md": io.BytesIO(b"# test model\n").getvalue()}
