"""Per-process runtime settings: the glibc allocator setting is applied only where it is safe and wanted."""

from __future__ import annotations

import platform

import pytest
import torch

from chadavit.pretrain.runtime import KEEP_FREED_ENV, keep_freed_memory


@pytest.mark.parametrize(("env", "value"), [(KEEP_FREED_ENV, "0"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=4"),
                                            ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")])
def test_allocator_left_alone_when_the_user_chose(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    assert keep_freed_memory(torch.device("cpu")) is False


def test_allocator_left_alone_on_cuda() -> None:
    assert keep_freed_memory(torch.device("cuda")) is False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc")
def test_allocator_tuned_for_cpu_training(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in (KEEP_FREED_ENV, "GLIBC_TUNABLES", "LD_PRELOAD"):
        monkeypatch.delenv(env, raising=False)
    assert keep_freed_memory(torch.device("cpu")) is True
