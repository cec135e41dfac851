"""Per-channel CLS attention maps as PNG, for checking what the model looks at.

Each PNG is one channel of one crop: the input plane (contrast-stretched for display, so 12-bit
images stored in 16-bit files are visible) next to the last block's CLS attention over that
channel, head-averaged, with a colour bar in attention weight. All channels of a crop share the
colour scale, so their maps can be compared.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from chadavit.atomic import write_atomic

DISPLAY_PERCENTILES = (1.0, 99.5)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "image"


def display_stretch(plane: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``plane`` scaled to 0..1 between its 1st and 99.5th percentiles; returns (image, low, high)."""
    lo, hi = (float(v) for v in np.percentile(plane, DISPLAY_PERCENTILES))
    if hi <= lo:
        lo, hi = float(plane.min()), float(plane.max())
    return np.clip((plane - lo) / max(hi - lo, 1e-12), 0, 1), lo, hi


def attention_maps(planes: torch.Tensor, attention: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` head-averaged CLS attention upsampled to the crop (nearest: one block per patch)."""
    att = attention.float().mean(0)  # (C, h, w)
    h, w = planes.shape[-2:]
    return torch.nn.functional.interpolate(att[:, None], size=(h, w), mode="nearest")[:, 0].cpu().numpy()


def attention_figure(image_id: str, crop_index: int, channel_names: list[str], k: int, plane: np.ndarray,
                     att: np.ndarray, vmax: float):
    """The figure of channel ``k``: titled input panel and attention panel with a stated colour scale."""
    from matplotlib.figure import Figure

    shown, lo, hi = display_stretch(plane)
    fig = Figure(figsize=(7.6, 3.6), dpi=100, layout="constrained")
    ax_in, ax_att = fig.subplots(1, 2)
    name = channel_names[k]
    fig.suptitle(f"{image_id}, crop {crop_index}: channel {name} ({k + 1} of {len(channel_names)}: "
                 f"{', '.join(channel_names)})", fontsize=9)
    ax_in.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_in.set_title(f"input {name}\n(display: {DISPLAY_PERCENTILES[0]:g}-{DISPLAY_PERCENTILES[1]:g} percentile, "
                    f"model values {lo:.3g}-{hi:.3g})", fontsize=8)
    im = ax_att.imshow(att, cmap="inferno", vmin=0, vmax=vmax, interpolation="nearest")
    ax_att.set_title(f"CLS attention on {name}\n(last block, mean over heads)", fontsize=8)
    for ax in (ax_in, ax_att):
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(im, ax=ax_att, fraction=0.046, pad=0.02)
    bar.set_label("attention weight per token\n(0 to max over this crop's channels)", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return fig


def save_attention(folder: Path, image_id: str, crop_index: int, channel_names: list[str], planes: torch.Tensor,
                   attention: torch.Tensor) -> list[Path]:
    """Write ``folder/<image_id>/crop<k>_<index>_<channel>.png`` for every channel of one crop (atomically)."""
    out = folder / safe_name(image_id)
    out.mkdir(parents=True, exist_ok=True)
    maps = attention_maps(planes, attention)
    vmax = float(maps.max()) or 1.0
    pixels = planes.float().cpu().numpy()
    paths = []
    for k, name in enumerate(channel_names):
        fig = attention_figure(image_id, crop_index, channel_names, k, pixels[k], maps[k], vmax)
        p = out / f"crop{crop_index:04d}_{k}_{safe_name(name)}.png"
        write_atomic(p, fig.savefig, suffix=".png")
        paths.append(p)
    return paths
