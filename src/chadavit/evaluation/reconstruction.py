"""Channel reconstruction: predict a held-out channel from the CLS embedding of the other channels.

Decoder (the paper: "2 fully connected layers, 5 convolutions and a sigmoid, about 5.2 M parameters";
the layer widths are our design, the official repository has no decoder):

    fc1  Linear(in_dim, 768) + GELU
    fc2  Linear(768, 128 * g * g) + GELU, reshaped to (128, g, g) with g = ceil(image_size / 32)
    5 x  [nearest upsample x2, Conv3x3]  channels 128 -> 128 -> 64 -> 64 -> 32 -> 1 (GELU between)
    sigmoid, then crop to image_size

At the paper's size (224 x 224 images, D = 192) this is 5,248,449 parameters. Only ``fc1`` depends on the
encoder (``in_dim x 768`` weights), so every compared model gets the same decoder apart from that first
layer. ``width`` scales every hidden width (``width=0.25`` for quick CPU suites); it is one number per
suite, so compared models still get identical decoders. Targets are the held-out channel scaled by the
model-independent percentile normalisation, so
MSE/MAE/R2 are comparable across encoders.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from chadavit.data.normalize import normalize_planes
from chadavit.evaluation.protocols import regression_metrics, single_threaded

HIDDEN = 768
BASE_CHANNELS = (128, 128, 64, 64, 32, 1)


class ChannelDecoder(nn.Module):
    """CLS embedding -> one ``image_size x image_size`` channel in ``[0, 1]``."""

    def __init__(self, in_dim: int, image_size: int = 224, width: float = 1.0) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.grid = math.ceil(self.image_size / 32)
        self.channels = tuple(max(1, round(c * width)) for c in BASE_CHANNELS[:-1]) + (1,)
        hidden = max(8, round(HIDDEN * width))
        c0 = self.channels[0]
        self.fc = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, c0 * self.grid**2), nn.GELU())
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(self.channels[:-1], self.channels[1:])):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1)]
            if i < len(self.channels) - 2:
                layers.append(nn.GELU())
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(len(z), self.channels[0], self.grid, self.grid)
        x = torch.sigmoid(self.convs(x))
        return x[:, 0, : self.image_size, : self.image_size]


def decoder_param_count(in_dim: int = 192, image_size: int = 224, width: float = 1.0) -> int:
    return sum(p.numel() for p in ChannelDecoder(in_dim, image_size, width).parameters())


def reconstruction_targets(images: list[np.ndarray], channel: int, size: int | None = None) -> np.ndarray:
    """The held-out channel of every image, percentile-normalised to ``[0, 1]``: ``(N, H, W)`` float32.

    ``size`` area-downsamples the targets (quick CPU suites); the paper predicts full resolution.
    """
    planes = normalize_planes(np.stack([img[channel] for img in images]), "percentile")
    if size is not None and tuple(planes.shape[1:]) != (size, size):
        planes = nn.functional.interpolate(planes[:, None], size=(size, size), mode="area")[:, 0]
    return planes.numpy()


def train_decoder(z_train: np.ndarray, t_train: np.ndarray, seed: int = 0, epochs: int = 30, lr: float = 3e-3,
                  batch_size: int = 64, width: float = 1.0, device: str | torch.device = "cpu") -> ChannelDecoder:
    """Fit a `ChannelDecoder` with MSE (seeded initialisation and data order)."""
    torch.manual_seed(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    mu, sd = z_train.mean(0, keepdims=True), z_train.std(0, keepdims=True)
    sd = np.where(sd > 1e-8, sd, 1.0)
    z = torch.from_numpy(((z_train - mu) / sd).astype(np.float32)).to(device)
    t = torch.from_numpy(t_train.astype(np.float32)).to(device)
    dec = ChannelDecoder(z.shape[1], t.shape[-1], width)
    with torch.no_grad():  # start at the mean intensity: a saturated sigmoid would stall training
        m = float(t.mean().clamp(1e-3, 1 - 1e-3))
        dec.convs[-1].bias.fill_(math.log(m / (1 - m)))
        dec.convs[-1].weight.mul_(0.1)
    dec.to(device)
    dec.register_buffer("z_mu", torch.from_numpy(mu.astype(np.float32)))
    dec.register_buffer("z_sd", torch.from_numpy(sd.astype(np.float32)))
    opt = torch.optim.AdamW(dec.parameters(), lr=lr, weight_decay=1e-4)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(z), generator=gen).to(device)
            for i in range(0, len(z), batch_size):
                b = order[i : i + batch_size]
                opt.zero_grad(set_to_none=True)
                nn.functional.mse_loss(dec(z[b]), t[b]).backward()
                opt.step()
    return dec.eval()


@torch.no_grad()
def predict(dec: ChannelDecoder, z: np.ndarray) -> np.ndarray:
    zz = (torch.from_numpy(z.astype(np.float32)).to(dec.z_mu.device) - dec.z_mu) / dec.z_sd
    return torch.cat([dec(zz[i : i + 256]) for i in range(0, len(zz), 256)]).cpu().numpy()


@single_threaded
def channel_reconstruction(z_train: np.ndarray, t_train: np.ndarray, z_test: np.ndarray, t_test: np.ndarray,
                           seed: int = 0, epochs: int = 30, width: float = 1.0,
                           lr: float = 3e-3, device: str | torch.device = "cpu") -> tuple[dict[str, float], np.ndarray]:
    """Train on (CLS, target) pairs, score MAE/MSE/R2/Pearson on the flattened test predictions."""
    dec = train_decoder(z_train.reshape(len(z_train), -1), t_train, seed=seed, epochs=epochs, width=width, lr=lr,
                        device=device)
    pred = predict(dec, z_test.reshape(len(z_test), -1))
    return regression_metrics(pred, t_test), pred
