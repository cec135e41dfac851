"""Per-channel CLS attention maps as PNG, for checking what the model looks at."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "image"


def attention_png(planes: torch.Tensor, attention: torch.Tensor) -> list[np.ndarray]:
    """One RGB ``(H, 2W, 3)`` uint8 panel per channel: the input plane, then the head-averaged attention over it.

    ``planes`` is the ``(C, H, W)`` model input; ``attention`` the ``(heads, C, h, w)`` CLS attention
    of the last block. Attention is scaled to the maximum over all channels of the crop, so panels
    of one crop are comparable.
    """
    from matplotlib import colormaps

    att = attention.float().mean(0)  # (C, h, w)
    c, h, w = planes.shape
    up = torch.nn.functional.interpolate(att[:, None], size=(h, w), mode="nearest")[:, 0]
    up = (up / up.max().clamp_min(1e-12)).cpu().numpy()
    cmap = colormaps["inferno"]
    panels = []
    for k in range(c):
        gray = (planes[k].float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
        left = np.repeat(gray[..., None], 3, axis=2)
        heat = (cmap(up[k])[..., :3] * 255).astype(np.uint8)
        right = (0.4 * left + 0.6 * heat).astype(np.uint8)
        panels.append(np.concatenate([left, right], axis=1))
    return panels


def save_attention(folder: Path, image_id: str, crop_index: int, channel_names: list[str], planes: torch.Tensor,
                   attention: torch.Tensor) -> list[Path]:
    """Write ``folder/<image_id>/crop<k>_<index>_<channel>.png`` for every channel of one crop."""
    from PIL import Image

    out = folder / safe_name(image_id)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, (name, panel) in enumerate(zip(channel_names, attention_png(planes, attention))):
        p = out / f"crop{crop_index:04d}_{j}_{safe_name(name)}.png"
        Image.fromarray(panel).save(p)
        paths.append(p)
    return paths
