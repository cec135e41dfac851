"""Two-layer feed-forward network of a transformer block."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["gelu", "relu"]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, act: Activation = "gelu", drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU() if act == "gelu" else nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
