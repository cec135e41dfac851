"""Self-attention restricted to each image's own tokens, on packed (unpadded) token tensors.

All tokens of a batch live in one ``(T, D)`` tensor, image after image; ``PackedSequences`` says
where each image's sequence starts and how long it is. Norms, projections and MLPs run on the packed
tensor (no work on padding); only attention needs the sequence structure, through a back-end:

``grouped`` (CPU default)
    consecutive images of equal sequence length (equal channel count) form one dense
    ``scaled_dot_product_attention`` call each, on a view of the packed tensor (models sort the
    images of a batch by channel count, so there is one call per distinct count and no copy);
    no padding anywhere.
``varlen`` (CUDA, fp16/bf16)
    ``torch.nn.attention.varlen.varlen_attn`` on the packed tensor with cumulative sequence lengths.
``padded`` (reference)
    every sequence padded to the longest one with a boolean key mask; used by tests to prove that
    the other back-ends compute the same thing.
``auto``
    ``varlen`` where it can run, otherwise ``grouped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttentionBackend = Literal["auto", "grouped", "padded", "varlen"]
ATTENTION_BACKENDS: tuple[str, ...] = ("auto", "grouped", "padded", "varlen")


def varlen_available() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@dataclass
class PackedSequences:
    """Where each image's token sequence lies in a packed ``(T, D)`` tensor.

    ``key_valid`` is set only in the padded-slot reference mode, where every sequence has the same
    length and padded tokens must be ignored as keys.
    """

    lengths: list[int]
    device: torch.device
    key_valid: torch.Tensor | None = None
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def starts(self) -> list[int]:
        out, s = [], 0
        for n in self.lengths:
            out.append(s)
            s += n
        return out

    @property
    def max_length(self) -> int:
        return max(self.lengths)

    def cu_seqlens(self) -> torch.Tensor:
        if "cu" not in self._cache:
            lengths = torch.tensor([0, *self.lengths], dtype=torch.int32)
            self._cache["cu"] = lengths.cumsum(0, dtype=torch.int32).to(self.device)
        return self._cache["cu"]  # type: ignore[return-value]

    def runs(self) -> list[tuple[int, int, int]]:
        """Maximal runs of consecutive equal-length sequences as ``(start token, count, length)``."""
        if "runs" not in self._cache:
            runs: list[tuple[int, int, int]] = []
            for s, n in zip(self.starts, self.lengths):
                if runs and runs[-1][2] == n:
                    runs[-1] = (runs[-1][0], runs[-1][1] + 1, n)
                else:
                    runs.append((s, 1, n))
            self._cache["runs"] = runs
        return self._cache["runs"]  # type: ignore[return-value]

    def padded_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather index ``(B, L_max)`` (pads point at token 0) and its validity mask."""
        if "padded" not in self._cache:
            lmax = self.max_length
            ar = torch.arange(lmax)
            lengths = torch.tensor(self.lengths)
            valid = ar[None] < lengths[:, None]
            index = torch.where(valid, torch.tensor(self.starts)[:, None] + ar[None], torch.zeros((), dtype=torch.long))
            self._cache["padded"] = (index.to(self.device), valid.to(self.device))
        return self._cache["padded"]  # type: ignore[return-value]


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(G, L, H, d)`` inputs -> ``(G, L, H, d)``; ``mask`` is ``(G, L)`` True = a real key."""
    attn_mask = mask[:, None, None, :] if mask is not None else None
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask)
    return out.transpose(1, 2)


def packed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seqs: PackedSequences, backend: AttentionBackend = "auto"
) -> torch.Tensor:
    """Attention of ``(T, H, d)`` packed queries/keys/values within each sequence of ``seqs``."""
    t, h, d = q.shape
    if q.dtype == torch.bfloat16 and q.device.type == "cpu" and q.requires_grad:
        # bf16 training on CPU: the flash kernel computes in fp32 inside anyway and its bf16 backward is
        # slower, so the casts pay for themselves (a bf16 chada_vit_moyen step 4-10 % faster; docs/models.md)
        with torch.autocast("cpu", enabled=False):
            return packed_attention(q.float(), k.float(), v.float(), seqs, backend).to(torch.bfloat16)
    if seqs.key_valid is not None:  # padded-slot reference mode: equal lengths, masked keys
        b, n = len(seqs.lengths), seqs.lengths[0]
        out = _sdpa(q.view(b, n, h, d), k.view(b, n, h, d), v.view(b, n, h, d), seqs.key_valid.view(b, n))
        return out.reshape(t, h, d)
    if backend == "auto":
        low = q.dtype in (torch.float16, torch.bfloat16)
        backend = "varlen" if (q.is_cuda and low and varlen_available()) else "grouped"
    if backend == "grouped":
        # split (not slicing): its backward is one concatenation, where the backward of every slice
        # would zero-fill and accumulate a full (T, H, d) gradient per run
        runs = seqs.runs()
        sizes = [g * n for _, g, n in runs]
        outs = [_sdpa(qi.view(g, n, h, d), ki.view(g, n, h, d), vi.view(g, n, h, d)).reshape(g * n, h, d)
                for (_, g, n), qi, ki, vi in zip(runs, q.split(sizes), k.split(sizes), v.split(sizes))]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 0)
    if backend == "padded":
        index, valid = seqs.padded_index()
        out = _sdpa(q[index], k[index], v[index], valid)
        return out[valid]
    if backend == "varlen":
        from torch.nn.attention.varlen import varlen_attn

        cu = seqs.cu_seqlens()
        return varlen_attn(q, k, v, cu, cu, seqs.max_length, seqs.max_length)
    raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")


def cls_attention(q: torch.Tensor, k: torch.Tensor, seqs: PackedSequences, scale: float) -> list[torch.Tensor]:
    """Softmax attention of each sequence's CLS query over its keys: a list of ``(H, L_i)``."""
    out = []
    for s, n in zip(seqs.starts, seqs.lengths):
        logits = torch.einsum("hd,lhd->hl", q[s].float(), k[s : s + n].float()) * scale
        if seqs.key_valid is not None:
            logits = logits.masked_fill(~seqs.key_valid[s : s + n][None], float("-inf"))
        out.append(logits.softmax(-1))
    return out


class Attention(nn.Module):
    """Multi-head self-attention with a fused QKV projection (Q, K, V stacked, as the official layout)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.backend: AttentionBackend = "auto"

    def forward(
        self, x: torch.Tensor, seqs: PackedSequences, return_attention: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        t, dim = x.shape
        q, k, v = self.qkv(x).view(t, 3, self.num_heads, self.head_dim).unbind(1)
        out = packed_attention(q, k, v, seqs, self.backend).reshape(t, dim)
        maps = cls_attention(q, k, seqs, self.head_dim**-0.5) if return_attention else None
        return self.proj_drop(self.proj(out)), maps
