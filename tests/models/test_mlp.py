"""The chunked MLP computes exactly what the whole-batch MLP computes, forward and backward."""

from __future__ import annotations

import pytest
import torch

from chadavit.models.layers.mlp import Mlp


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_chunked_mlp_matches_unchunked(act: str) -> None:
    torch.manual_seed(0)
    chunked = Mlp(24, 64, act=act, chunk_tokens=16)
    whole = Mlp(24, 64, act=act, chunk_tokens=0)
    whole.load_state_dict(chunked.state_dict())
    x = torch.randn(103, 24)  # 6 full chunks and a partial one
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = chunked(xa), whole(xb)
    assert ya.shape == (103, 24)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6)
    for (name, pa), pb in zip(chunked.named_parameters(), whole.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-5, atol=1e-5, msg=name)


def test_chunking_splits_only_large_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    mlp = Mlp(8, 16, chunk_tokens=10)
    calls: list[int] = []
    rows = mlp._rows
    monkeypatch.setattr(mlp, "_rows", lambda x: (calls.append(x.shape[0]), rows(x))[1])
    mlp(torch.randn(15, 8))  # up to 1.5 chunks: one call, no tiny tail chunk
    assert calls == [15]
    calls.clear()
    mlp(torch.randn(25, 8))
    assert calls == [10, 10, 5]
