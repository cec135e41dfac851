"""DINO projection head: 3-layer MLP -> L2-normalised bottleneck -> weight-normalised prototype layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    """``in_dim -> hidden -> hidden -> bottleneck`` (GELU), L2 normalisation, then ``Linear(bottleneck, out_dim)``.

    The last layer is weight-normalised (``parametrizations.weight_norm``: ``original0`` = g,
    ``original1`` = v). With ``norm_last_layer`` the magnitude g is fixed at 1 and not trained, as in
    DINO; this stabilises training of small models.
    """

    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 norm_last_layer: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2, eps=1e-6 if x.dtype == torch.float32 else 1e-4)
        return self.last_layer(x)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return list(self.last_layer.parameters())
