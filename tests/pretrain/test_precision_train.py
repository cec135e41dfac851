"""Pretraining in bf16: it trains (finite, loss falls) and a non-finite loss stops it with the step named."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from chadavit import precision as P
from chadavit.pretrain import head as H
from chadavit.pretrain.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> list[torch.dtype]:
    """Pretend the CPU has native bf16 and record the dtype the DINO head sees."""
    monkeypatch.setattr(P, "cpu_bf16_support", lambda: "amx_bf16")
    seen: list[torch.dtype] = []
    forward = H.DINOHead.forward

    def spy(self, x):  # noqa: ANN001, ANN202
        out = forward(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(H.DINOHead, "forward", spy)
    return seen


def test_bf16_pretraining_is_finite_and_learns(tmp_path: Path, bf16_cpu: list[torch.dtype]) -> None:
    out = tmp_path / "run"
    train(tiny_config(out, "train.precision=bf16", "dino.momentum_teacher=1.0", "dino.center_momentum=1.0",
                      "train.epochs=2", "optim.warmup_epochs=0"))
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert torch.bfloat16 in bf16_cpu  # the forward really ran in bf16
    assert all(map(lambda v: v == v and abs(v) < 1e6, losses))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses


def test_inf_under_bf16_stops_with_the_step_named(tmp_path: Path, bf16_cpu: list[torch.dtype],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    forward = H.DINOHead.forward
    calls = {"n": 0}

    def overflow(self, x):  # noqa: ANN001, ANN202
        calls["n"] += 1
        out = forward(self, x)
        return out * 1e39 if calls["n"] > 4 else out  # beyond bf16's range: inf after the first step

    monkeypatch.setattr(H.DINOHead, "forward", overflow)
    with pytest.raises(FloatingPointError, match=r"is (nan|inf) at step \d+"):
        train(tiny_config(tmp_path / "run", "train.precision=bf16", "train.epochs=1"))
