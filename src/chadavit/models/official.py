"""Loading the official ChAda-ViT weights (Lightning training checkpoints or bare backbone safetensors).

Keys are mapped to our layout and loaded strictly: every missing or unexpected key is reported by
name. Depth, width, slot count, MLP width, patch and image size are read from the tensors; the head
count and final-norm eps are not recoverable from shapes (the official code changed its head count
from 12 to 2 without changing any shape), so they are parameters. The official layer arithmetic
(``block="legacy"``: post-norm with double ``norm1``, ReLU) is selected automatically.
Files are read with ``torch.load(weights_only=True)`` or safetensors; nothing is unpickled.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch
from torch import nn

from chadavit.models.catalog import build_model
from chadavit.models.config import ChadaViTConfig
from chadavit.models.io import CheckpointError, read_safetensors, strict_load

DEFAULT_NUM_HEADS = 12  # the released "Moyen" model; the official code also trained with 2
DEFAULT_FINAL_NORM_EPS = 1e-5  # the HF config of the released model; the training factory used 1e-6
STUDENT_PREFIX = "backbone."
TEACHER_PREFIX = "momentum_backbone."
# parts of a Lightning DINO checkpoint that are not the backbone being loaded
OTHER_PREFIXES = ("backbone.", "momentum_backbone.", "head.", "momentum_head.", "classifier.", "dino_loss_func.")

_BLOCK_RENAMES = {
    "self_attn.in_proj_weight": "attn.qkv.weight",
    "self_attn.in_proj_bias": "attn.qkv.bias",
    "self_attn.out_proj.weight": "attn.proj.weight",
    "self_attn.out_proj.bias": "attn.proj.bias",
    "linear1.weight": "mlp.fc1.weight",
    "linear1.bias": "mlp.fc1.bias",
    "linear2.weight": "mlp.fc2.weight",
    "linear2.bias": "mlp.fc2.bias",
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
}


def read_official_state(path: str | os.PathLike[str], teacher: bool = False) -> dict[str, torch.Tensor]:
    """The official backbone tensors (un-prefixed official key names) of a ``.ckpt`` or ``.safetensors`` file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    if p.suffix == ".safetensors":
        if teacher:
            raise CheckpointError(f"{p}: a bare backbone safetensors file holds one backbone; --teacher needs "
                                  "the Lightning training checkpoint (.ckpt)")
        return read_safetensors(p)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{p}: not a loadable tensor checkpoint ({type(exc).__name__}: {exc})") from exc
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: expected a dict with a 'state_dict', got {type(ckpt).__name__}")
    state = {("backbone." + k[len("encoder."):] if k.startswith("encoder.") else k): v for k, v in state.items()}
    prefix = TEACHER_PREFIX if teacher else STUDENT_PREFIX
    if not any(k.startswith(prefix) for k in state):
        if any(k.startswith(p_) for p_ in OTHER_PREFIXES for k in state):
            raise CheckpointError(f"{p}: no '{prefix}*' keys ({'teacher' if teacher else 'student'} backbone) "
                                  "in this checkpoint")
        return state  # a bare backbone state dict saved with torch.save
    unknown = sorted(k for k in state if not k.startswith(OTHER_PREFIXES))
    if unknown:
        raise CheckpointError(f"{p}: unexpected keys outside the known checkpoint parts {OTHER_PREFIXES}: {unknown}")
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def official_config(state: dict[str, torch.Tensor], num_heads: int, final_norm_eps: float, source: str
                    ) -> ChadaViTConfig:
    needed = ["cls_token", "pos_embed", "channel_token", "token_learner.proj.weight"]
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointError(f"{source}: missing keys {missing}; not an official ChAda-ViT backbone")
    depth_ids = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    depth = max(depth_ids) + 1 if depth_ids else 0
    dim = state["cls_token"].shape[-1]
    patch = state["token_learner.proj.weight"].shape[-1]
    n_patches = state["pos_embed"].shape[-2] - 1
    mlp_key = "blocks.0.linear1.weight"
    return ChadaViTConfig(
        embed_dim=dim, depth=depth, num_heads=num_heads,
        mlp_dim=state[mlp_key].shape[0] if mlp_key in state else 2048,
        patch_size=patch, img_size=int(math.isqrt(n_patches)) * patch, channel_embedding="slot",
        num_slots=state["channel_token"].shape[1], block="legacy", act="relu", norm_eps=1e-5,
        final_norm_eps=final_norm_eps, normalization="dtype_range",
    )


def convert_official_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename official keys to ours; any key that has no counterpart is reported by name."""
    out: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for k, v in state.items():
        if k == "cls_token":
            out["cls_token"] = v.reshape(1, -1)
        elif k == "pos_embed":
            out["pos_embed"] = v.reshape(-1, v.shape[-1])
        elif k == "channel_token":
            out["channel_embed.weight"] = v.reshape(v.shape[1], v.shape[-1])
        elif k.startswith("token_learner.proj."):
            out["patch_embed.proj." + k.rsplit(".", 1)[1]] = v
        elif k in ("norm.weight", "norm.bias"):
            out[k] = v
        elif (m := re.match(r"blocks\.(\d+)\.(.+)$", k)) and m.group(2) in _BLOCK_RENAMES:
            out[f"blocks.{m.group(1)}.{_BLOCK_RENAMES[m.group(2)]}"] = v
        else:
            unexpected.append(k)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected keys {sorted(unexpected)}")
    return out


def load_official_checkpoint(path: str | os.PathLike[str], num_heads: int = DEFAULT_NUM_HEADS,
                             final_norm_eps: float = DEFAULT_FINAL_NORM_EPS,
                             teacher: bool = False) -> nn.Module:
    """Load an official ChAda-ViT checkpoint (student by default, ``teacher=True`` for the EMA teacher).

    ``num_heads=12`` and ``final_norm_eps=1e-5`` match the released "Moyen" model and its HF config;
    the training factory used ``1e-6``.
    """
    state = read_official_state(path, teacher)
    config = official_config(state, num_heads, final_norm_eps, str(path))
    model = build_model(config)
    strict_load(model, convert_official_state(state, str(path)), str(path))
    return model.eval()
