"""Fixtures for the embedding tests: a tiny ChAda-ViT and small image folders written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

CP = "data/cellprofiler_examples"
HUMAN_PATTERN = r"{plate}_{well:[A-P]\d\d}f{site}d{channel}.tif"


@pytest.fixture(scope="session")
def tiny_model() -> torch.nn.Module:
    """``chada_vit_nano`` cut to 2 blocks (64 px input): fast on 2 CPU cores, same code path as the presets."""
    from chadavit.models import create_model

    torch.manual_seed(0)
    return create_model("chada_vit_nano", depth=2).eval()


@pytest.fixture(scope="session")
def identity_model() -> torch.nn.Module:
    from chadavit.models import create_model

    torch.manual_seed(0)
    return create_model("chada_vit_nano", depth=1, channel_embedding="identity",
                        channel_vocab=["DNA", "Actin", "Tubulin"]).eval()


def blobs(h: int, w: int, n: int, seed: int, dtype: str = "uint16") -> np.ndarray:
    """A plane with ``n`` bright disks on a dim background (nucleus-like)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = rng.normal(100, 5, (h, w))
    for _ in range(n):
        cy, cx, r = rng.uniform(10, h - 10), rng.uniform(10, w - 10), rng.uniform(4, 7)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 900
    img = np.clip(img, 0, 65535 if dtype == "uint16" else 255)
    return (img / (1 if dtype == "uint16" else 4)).astype(dtype)


@pytest.fixture
def plate_folder(tmp_path: Path) -> Path:
    """Six 2-channel images (wells A01..B03, one site) written as one uint16 TIFF per channel."""
    root = tmp_path / "plate"
    root.mkdir()
    for i, well in enumerate(["A01", "A02", "A03", "B01", "B02", "B03"]):
        tifffile.imwrite(root / f"{well}_s1_w1.tif", blobs(96, 80, 6, i))
        tifffile.imwrite(root / f"{well}_s1_w2.tif", blobs(96, 80, 3, 100 + i))
    return root
