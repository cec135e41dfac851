"""Precision selection (auto / fp32 / bf16), the bf16 fallback, and bf16 inference and training on small models."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from chadavit import precision as P
from chadavit.errors import ChadavitError
from tests.models.helpers import random_batch, small_model


@pytest.fixture
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "cpu_bf16_support", lambda: None)


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "cpu_bf16_support", lambda: "amx_bf16")


def test_fp32_is_always_fp32(native_bf16: None) -> None:
    assert P.resolve_precision("fp32", "cpu") == torch.float32
    assert P.resolve_precision("float32", torch.device("cpu")) == torch.float32


def test_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "cpu_bf16_support", lambda: "avx512_bf16")
    assert P.resolve_precision("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr(P, "cpu_bf16_support", lambda: None)
    assert P.resolve_precision("auto", "cpu") == torch.float32


def test_bf16_request_without_native_bf16_falls_back_with_a_message(no_native_bf16: None,
                                                                    caplog: pytest.LogCaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "_said", set())  # decisions are logged once per process
    with caplog.at_level(logging.WARNING, logger="chadavit.precision"):
        assert P.resolve_precision("bf16", "cpu") == torch.float32
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "bf16 requested" in msg and "falling back to fp32" in msg and "avx512_bf16" in msg


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:  # noqa: ANN001
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert {"avx512_bf16", "amx_bf16"} <= P._cpuinfo_flags(str(info))
    assert P._cpuinfo_flags(str(tmp_path / "missing")) == set()


def test_unknown_precision_is_a_user_error() -> None:
    with pytest.raises(ChadavitError, match="--precision 'fp8'"):
        P.resolve_precision("fp8", "cpu")


def test_training_auto_is_fp32_on_cpu_and_explicit_bf16_is_honoured(native_bf16: None) -> None:
    assert P.resolve_train_precision("auto", "cpu") == torch.float32  # measured no faster on CPUs
    assert P.resolve_train_precision("bf16", "cpu") == torch.bfloat16
    assert P.resolve_train_precision("fp32", "cpu") == torch.float32


def test_bf16_inference_keeps_cls_direction() -> None:
    model = small_model(depth=2, img_size=32)
    batch = random_batch([1, 3, 2, 5], size=32, seed=3)
    with torch.inference_mode():
        ref = model(batch).cls
        fast = P.prepare_inference(copy.deepcopy(model), torch.bfloat16)
        out = fast(batch)
    assert out.cls.dtype == torch.bfloat16
    norms = [m for m in fast.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)  # norms keep fp32 parameters
    assert fast.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(out.cls.float(), ref, dim=-1)
    assert cos.min().item() >= 0.999, cos


def test_bf16_train_step_is_finite_and_learns() -> None:
    torch.manual_seed(0)
    model = small_model(depth=2, img_size=32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = random_batch([2, 1, 3, 2], size=32, seed=1)
    target = torch.randn(4, model.embed_dim)
    losses = []
    for _ in range(6):
        with P.train_autocast(torch.bfloat16, "cpu"):
            out = model(batch)
        loss = (out.cls.float() - target).pow(2).mean()
        assert torch.isfinite(loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert all(s["exp_avg"].dtype == torch.float32 for s in opt.state.values())
    assert losses[-1] < losses[0]


def test_cpu_bf16_training_attends_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CPU autocast with gradients attention runs in fp32 (its bf16 backward is slower there)."""
    import chadavit.models.layers.attention as A

    seen: list[torch.dtype] = []
    sdpa = A.F.scaled_dot_product_attention

    def spy(q: torch.Tensor, *a: object, **kw: object) -> torch.Tensor:
        seen.append(q.dtype)
        return sdpa(q, *a, **kw)

    monkeypatch.setattr(A.F, "scaled_dot_product_attention", spy)
    model = small_model(depth=1, img_size=32)
    batch = random_batch([1, 3, 2], size=32, seed=0)
    with P.train_autocast(torch.bfloat16, "cpu"):
        cls = model(batch).cls
    assert seen and set(seen) == {torch.float32}
    cls.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.blocks[0].attn.qkv.parameters())
    seen.clear()
    with torch.inference_mode():  # inference keeps bf16 attention (equal speed, no casts)
        P.prepare_inference(model, torch.bfloat16)(batch)
    assert set(seen) == {torch.bfloat16}
