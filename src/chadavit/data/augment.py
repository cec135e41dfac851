"""Microscopy augmentations for ``(C, H, W)`` tensors with any channel count (no RGB assumptions).

Why not torchvision/albumentations: they assume 1-4 channel RGB/PIL images. These transforms work on
any number of channels, keep the channel count and dtype, and take an explicit ``torch.Generator``
so every random draw is a function of ``(seed, epoch, image index)`` — which is what makes an
interrupted and resumed pretraining run bit-identical to an uninterrupted one.

Intensity transforms expect normalised float planes (``[0, 1]`` after
:func:`chadavit.data.normalize.normalize_planes`, the one place raw pixels are scaled); geometric
transforms accept any dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0, n: int | None = None) -> torch.Tensor | float:
    if n is None:
        return lo + (hi - lo) * float(torch.rand((), generator=g))
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of ``(C, h, w)``; integer dtypes are rounded back."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    dt = x.dtype
    y = F.interpolate(x[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    if not dt.is_floating_point:
        info = torch.iinfo(dt)
        y = y.round_().clamp_(info.min, info.max)
    return y.to(dt)


def random_resized_crop(x: torch.Tensor, size: int | tuple[int, int], g: torch.Generator,
                        scale: tuple[float, float] = (0.4, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Crop a random area fraction ``scale`` with aspect ``ratio`` (log-uniform) and resize to ``size``."""
    out = (size, size) if isinstance(size, int) else tuple(size)
    _, h, w = x.shape
    area = h * w
    for _ in range(10):
        target = area * _u(g, *scale)
        logr = _u(g, math.log(ratio[0]), math.log(ratio[1]))
        ar = math.exp(logr)
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (), generator=g))
            left = int(torch.randint(0, w - cw + 1, (), generator=g))
            return _resize(x[:, top : top + ch, left : left + cw], out)
    side = min(h, w)  # fallback: central square
    top, left = (h - side) // 2, (w - side) // 2
    return _resize(x[:, top : top + side, left : left + side], out)


def random_flip_rot90(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One of the 8 symmetries of the square (microscopy has no preferred orientation)."""
    k = int(torch.randint(0, 4, (), generator=g))
    if k:
        x = torch.rot90(x, k, dims=(-2, -1))
    if float(torch.rand((), generator=g)) < 0.5:
        x = torch.flip(x, dims=(-1,))
    return x


def channel_jitter(x: torch.Tensor, g: torch.Generator, brightness: float = 0.3, contrast: float = 0.3,
                   p: float = 0.8) -> torch.Tensor:
    """Per-channel random brightness (multiplicative) and contrast (around the channel mean), then clamp to [0, 1]."""
    if brightness <= 0 and contrast <= 0 or float(torch.rand((), generator=g)) >= p:
        return x
    c = x.shape[0]
    b = _u(g, 1 - brightness, 1 + brightness, c).to(x.dtype)
    k = _u(g, 1 - contrast, 1 + contrast, c).to(x.dtype)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    y = (x - mean) * k[:, None, None] + mean
    return (y * b[:, None, None]).clamp_(0.0, 1.0)


def channel_intensity(x: torch.Tensor, g: torch.Generator, shift: float = 0.3,
                      gamma: tuple[float, float] = (0.5, 1.5)) -> torch.Tensor:
    """Per-channel gamma (drawn log-uniform in ``gamma``) then additive shift (uniform +-``shift``), clamp [0, 1].

    Stain intensity differs between wells and plates per channel; with ``dataset`` normalisation (one range
    per stain) this teaches the model that small global level changes of one stain are not the cell.
    """
    c = x.shape[0]
    lo, hi = gamma
    y = x.clamp(0.0, 1.0)
    if lo != 1.0 or hi != 1.0:
        gam = torch.exp(_u(g, math.log(lo), math.log(hi), c)).to(x.dtype)
        y = y.pow(gam[:, None, None])
    if shift > 0:
        y = y + _u(g, -shift, shift, c).to(x.dtype)[:, None, None]
    return y.clamp_(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, g: torch.Generator, sigma: tuple[float, float] = (0.1, 1.5),
                  p: float = 0.5) -> torch.Tensor:
    """Depthwise gaussian blur with one random sigma for all channels."""
    if p <= 0 or float(torch.rand((), generator=g)) >= p:
        return x
    s = _u(g, *sigma)
    radius = max(1, int(math.ceil(2.5 * s)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * s * s))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[0]
    y = F.pad(x[None], (radius, radius, radius, radius), mode="reflect") if min(x.shape[-2:]) > radius else x[None]
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0]


def gaussian_noise(x: torch.Tensor, g: torch.Generator, std: tuple[float, float] = (0.0, 0.03),
                   p: float = 0.5) -> torch.Tensor:
    """Additive gaussian noise with a random std (camera read noise on normalised planes)."""
    if p <= 0 or float(torch.rand((), generator=g)) >= p:
        return x
    s = _u(g, *std)
    return (x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp_(0.0, 1.0)


def subsample_channels(names: Sequence[str], g: torch.Generator, p: float = 0.5,
                       min_keep: int = 1) -> list[int]:
    """Indices of a random non-empty channel subset (with probability ``p``; else all channels)."""
    c = len(names)
    if c <= min_keep or float(torch.rand((), generator=g)) >= p:
        return list(range(c))
    k = int(torch.randint(min_keep, c + 1, (), generator=g))
    return sorted(torch.randperm(c, generator=g)[:k].tolist())


@dataclass
class AugmentConfig:
    """Multi-crop and per-crop augmentation settings (the ``augment`` section of a pretraining config)."""

    global_size: int = 64
    local_size: int = 32
    n_local: int = 4
    global_scale: tuple[float, float] = (0.35, 1.0)
    local_scale: tuple[float, float] = (0.08, 0.35)
    flip_rot90: bool = True
    brightness: float = 0.3
    contrast: float = 0.3
    jitter_p: float = 0.8
    blur_p: tuple[float, float] = (1.0, 0.1)  # first global crop, second global crop (locals use 0.5)
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise_p: float = 0.3
    noise_std: tuple[float, float] = (0.0, 0.03)
    channel_subsample_p: float = 0.0
    intensity_shift: float = 0.0  # per-channel additive shift +-this, p 1 (channel_intensity); 0 = off
    gamma: tuple[float, float] = (1.0, 1.0)  # per-channel gamma range (log-uniform); (1, 1) = off


class MultiCrop:
    """DINO multi-crop for one normalised image ``(C, H, W)``: 2 global crops and ``n_local`` local crops.

    All crops of an image keep the same channels (after the optional channel subsampling, which is
    drawn once per image) so teacher and student see the same stains.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def _view(self, x: torch.Tensor, g: torch.Generator, size: int, scale: tuple[float, float],
              blur_p: float) -> torch.Tensor:
        c = self.cfg
        v = random_resized_crop(x, size, g, scale=tuple(scale))
        if c.flip_rot90:
            v = random_flip_rot90(v, g)
        v = channel_jitter(v, g, c.brightness, c.contrast, c.jitter_p)
        if c.intensity_shift > 0 or tuple(c.gamma) != (1.0, 1.0):  # draws nothing when off: old runs unchanged
            v = channel_intensity(v, g, c.intensity_shift, tuple(c.gamma))
        v = gaussian_blur(v, g, tuple(c.blur_sigma), blur_p)
        v = gaussian_noise(v, g, tuple(c.noise_std), c.noise_p)
        return v.contiguous()

    def __call__(self, x: torch.Tensor, names: Sequence[str], g: torch.Generator
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
        c = self.cfg
        keep = subsample_channels(names, g, c.channel_subsample_p)
        if len(keep) != x.shape[0]:
            x = x[keep]
            names = [names[i] for i in keep]
        glob = [self._view(x, g, c.global_size, c.global_scale, c.blur_p[i]) for i in range(2)]
        loc = [self._view(x, g, c.local_size, c.local_scale, 0.5) for _ in range(c.n_local)]
        return glob, loc, list(names)
