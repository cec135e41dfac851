"""Attention PNGs: channel names in titles, a colour bar with its scale, a visible input panel for dim 16-bit data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from chadavit.embed.attention import attention_figure, display_stretch, save_attention


def _dim_plane() -> np.ndarray:
    """A 12-bit image in a 16-bit file under dtype_range normalisation: values below 0.04."""
    rng = np.random.default_rng(0)
    return (rng.integers(100, 2319, (32, 32)) / 65535).astype(np.float32)


def test_dim_input_is_stretched_for_display() -> None:
    shown, lo, hi = display_stretch(_dim_plane())
    assert hi < 0.04 and shown.min() == 0 and shown.max() == 1 and shown.std() > 0.2 and lo < hi


def test_figure_titles_and_colour_bar() -> None:
    att = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    fig = attention_figure("plate1_A01", 3, ["DNA", "Actin"], 1, _dim_plane(), att, float(att.max()))
    texts = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
    joined = " | ".join(texts)
    assert "plate1_A01, crop 3: channel Actin (2 of 2: DNA, Actin)" in joined
    assert "input Actin" in joined and "CLS attention on Actin" in joined and "attention weight" in joined
    assert len(fig.axes) == 3  # input, attention, colour bar


def test_png_files_show_the_input(tmp_path: Path) -> None:
    planes = torch.from_numpy(np.stack([_dim_plane(), _dim_plane()[::-1].copy()]))
    attention = torch.rand(2, 2, 2, 2)  # (heads, C, h, w)
    paths = save_attention(tmp_path, "img/1", 0, ["DNA", "GFP"], planes, attention)
    assert [p.name for p in paths] == ["crop0000_0_DNA.png", "crop0000_1_GFP.png"]
    png = np.asarray(Image.open(paths[0]).convert("L"), dtype=np.float32)
    h, w = png.shape
    left = png[int(0.25 * h) : int(0.85 * h), int(0.05 * w) : int(0.4 * w)]  # inside the input panel
    assert left.std() > 40, "the input panel of a dim 16-bit image must not be black"
    assert not list(tmp_path.rglob(".*tmp*"))
