"""Frozen-encoder features, computed once per (model, dataset, channel subset, kind) and cached as ``.npy``.

Model specs (``chadavit eval --model SPEC``):

``random:NAME[,key=value...]``  a registered preset (``chadavit models list``) at random init (seed 0), config
                               overrides after commas, e.g. ``random:fixed_channel_vit_tiny,in_chans=3``
``NAME``                       same as ``random:NAME``
``DIR``                        a ``save_pretrained`` folder (``model.safetensors`` + ``config.json``)
``official:PATH[:teacher]``    an official ChAda-ViT Lightning checkpoint (student unless ``:teacher``)
``pixels``                     a fixed, untrained pixel-statistics encoder (a floor every model should beat)
``raw_pixels``                 per-crop standardised raw pixels (baseline, `evaluation/handcrafted.py`)
``cellprofiler``               CellProfiler per-cell measurements from cp_measure (baseline, evaluation/cellprofiler.py)
``handcrafted``                the old hand-written CellProfiler-style statistics (for comparison only)
``LABEL=SPEC``                 any of the above, shown as LABEL in tables and figures

Feature kinds: ``cls`` (the CLS token), ``patch_mean`` (mean of every patch token of every channel),
``per_channel`` (the mean patch token of each channel, concatenated in the order the dataset first names its
channels; zeros for a channel an image lacks) and ``all_tokens`` (every patch token of every channel
concatenated; needs a fixed channel count).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.evaluation.data import EvalData, EvalInputError
from chadavit.models.output import EncoderOutput

log = logging.getLogger(__name__)
FEATURE_KINDS = ("cls", "patch_mean", "per_channel", "all_tokens")


# ---------------------------------------------------------------------------------------------- a reference encoder
class PixelStatsEncoder(nn.Module):
    """Untrained reference: per-patch intensity statistics through a fixed random projection.

    Follows the encoder contract (``cls``, ``patch_tokens``, ``attentions``) so every protocol and figure
    runs on it; it also serves tests that must not depend on a transformer.
    """

    def __init__(self, embed_dim: int = 32, patch_size: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.config = SimpleNamespace(normalization="percentile", patch_size=patch_size, embed_dim=embed_dim)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(4, embed_dim, generator=g))

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, batch: ChannelBatch, return_attention: bool = False) -> EncoderOutput:
        p = self.config.patch_size
        x = batch.planes[:, None]
        mean = nn.functional.avg_pool2d(x, p)
        sq = nn.functional.avg_pool2d(x * x, p)
        mx = nn.functional.max_pool2d(x, p)
        stats = torch.cat([mean, (sq - mean**2).clamp_min(0).sqrt(), mx, torch.ones_like(mean)], 1)  # (P, 4, h, w)
        tok = torch.tanh(stats.permute(0, 2, 3, 1) @ self.proj)  # (P, h, w, D)
        per_image = list(torch.split(tok, batch.num_channels.tolist(), 0))
        cls = torch.stack([t.mean((0, 1, 2)) for t in per_image])
        attn = None
        if return_attention:
            attn = [torch.softmax(t.norm(dim=-1).flatten(), 0).view(1, *t.shape[:3]) for t in per_image]
        return EncoderOutput(cls=cls, patch_tokens=per_image, attentions=attn, channel_names=batch.channel_names)


# ---------------------------------------------------------------------------------------------- model specs
@dataclass
class LoadedModel:
    spec: str
    label: str
    model: nn.Module
    key: str  # cache key: label + weight hash

    @property
    def normalization(self) -> str:
        cfg = getattr(self.model, "config", None)
        return str(getattr(cfg, "normalization", "percentile"))

    @property
    def fixed_in_chans(self) -> int | None:
        """Channel count a fixed-channel baseline needs (images are zero-padded/truncated to it), else None."""
        cfg = getattr(self.model, "config", None)
        arch = str(getattr(cfg, "architecture", ""))
        if "fixed" in arch:
            return int(getattr(cfg, "in_chans", 3))
        return None

    @property
    def position_dependent(self) -> bool:
        """True when a channel's meaning is its slot (fixed-channel stem, concatenated per-channel CLS): a
        missing channel is then given as a zero plane in place rather than left out."""
        cfg = getattr(self.model, "config", None)
        return self.fixed_in_chans is not None or str(getattr(cfg, "pooling", "mean")) == "concat"


def weights_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()[:12]


def load_model_spec(spec: str, device: str | torch.device = "cpu", precision: str = "fp32") -> LoadedModel:
    """Turn a ``--model`` spec into a frozen encoder in eval mode (see the module docstring).

    ``LABEL=SPEC`` names the model in tables and figures (``LABEL`` without ``,`` or ``:``).
    ``precision`` (``auto``/``fp32``/``bf16``, see :mod:`chadavit.precision`) applies to transformer
    encoders; bf16 features are cached under their own key.
    """
    spec = spec.strip()
    m = re.match(r"^([^,:=/]+)=(.+)$", spec)
    if m and not Path(spec).exists():
        lm = load_model_spec(m.group(2), device, precision)
        lm.label = m.group(1).strip()
        lm.key = re.sub(r"[^A-Za-z0-9_.-]+", "_", lm.label)[:60] + "-" + lm.key.rsplit("-", 1)[-1]
        return lm
    if spec == "pixels":
        model: nn.Module = PixelStatsEncoder()
        label = "pixels"
    elif spec == "cellprofiler":
        from chadavit.evaluation.cellprofiler import LABEL, CellProfilerEncoder

        model, label = CellProfilerEncoder(), LABEL
    elif spec in ("raw_pixels", "handcrafted"):
        from chadavit.evaluation.handcrafted import HandcraftedEncoder, RawPixelEncoder

        model = RawPixelEncoder() if spec == "raw_pixels" else HandcraftedEncoder()
        label = spec
    else:
        from chadavit.models.spec import is_official, load_model_from_spec, split_official_options

        model = load_model_from_spec(spec, allow_bare_preset=True)
        base, opts = split_official_options(spec)
        if is_official(base) and not spec.startswith("random:"):
            rest = base.removeprefix("official:")
            teacher = rest.endswith(":teacher")
            path = rest.removesuffix(":teacher").removesuffix(":student")
            label = f"official:{Path(path).stem}" + (":teacher" if teacher else "")
            label += "".join(f",{k}={v}" for k, v in opts.items())  # 2 vs 12 heads are different models
        elif spec.startswith("hf:"):
            label = spec
        elif Path(spec).is_dir() or Path(spec).is_file():
            label = Path(spec).resolve().name if Path(spec).is_dir() else Path(spec).resolve().parent.name
        else:
            label = spec if spec.startswith("random:") else f"random:{spec}"
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60] + "-" + weights_hash(model)
    model.to(device)
    if not isinstance(model, PixelStatsEncoder) and not hasattr(model, "numpy_features"):  # weights only
        from chadavit.precision import prepare_inference, resolve_precision

        dtype = resolve_precision(precision, torch.device(device))
        if dtype != torch.float32:
            model = prepare_inference(model, dtype)
            key += "-bf16"
    return LoadedModel(spec=spec, label=label, model=model, key=key)


# ---------------------------------------------------------------------------------------------- extraction
def _fit_channels(img: np.ndarray, names: tuple[str, ...], n: int | None) -> tuple[np.ndarray, tuple[str, ...]]:
    if n is None or img.shape[0] == n:
        return img, names
    if img.shape[0] > n:
        return img[:n], names[:n]
    pad = np.zeros((n - img.shape[0], *img.shape[1:]), img.dtype)
    return np.concatenate([img, pad]), names + tuple(f"empty{i}" for i in range(n - img.shape[0]))


def make_batch(lm: LoadedModel, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> ChannelBatch:
    """Normalise with the model's recorded method and put the batch on the model's device."""
    fitted = [_fit_channels(im, nm, lm.fixed_in_chans) for im, nm in zip(images, names)]
    batch = ChannelBatch.from_images([f[0] for f in fitted], channel_names=[f[1] for f in fitted],
                                     normalize=lm.normalization,  # type: ignore[arg-type]
                                     stats=getattr(getattr(lm.model, "config", None), "normalization_stats", None))
    p = next(iter(lm.model.parameters()), None)
    if p is None:
        p = next(iter(lm.model.buffers()), None)
    return batch.to(p.device) if p is not None and p.device.type != "cpu" else batch


def subset_tag(channels: Sequence[int] | None, zero_fill: bool = False) -> str:
    if channels is None:
        return "all"
    return ("zf" if zero_fill else "ch") + "-".join(str(c) for c in channels)


def select_channels(data: EvalData, channels: Sequence[int] | None,
                    zero_fill: bool = False) -> tuple[list[np.ndarray], list[tuple[str, ...]]]:
    """Keep ``channels`` of every image; with ``zero_fill`` the others become zero planes in place."""
    if channels is None:
        return data.images, data.channel_names
    idx = list(channels)
    if zero_fill:
        out = []
        for im in data.images:
            z = np.zeros_like(im)
            z[idx] = im[idx]
            out.append(z)
        return out, data.channel_names
    return [im[idx] for im in data.images], [tuple(n[i] for i in idx) for n in data.channel_names]


@torch.no_grad()
def extract_features(lm: LoadedModel, data: EvalData, kinds: Sequence[str] = ("cls", "patch_mean"),
                     channels: Sequence[int] | None = None, batch_size: int = 64,
                     cache_dir: str | os.PathLike[str] | None = None, progress: bool = True,
                     zero_fill: bool | None = None) -> dict[str, np.ndarray]:
    """Features of every image (in order) for each kind; cached under ``cache_dir`` when given.

    ``channels`` keeps only those channel indices of every image (missing-channel curve, reconstruction);
    the others are dropped, or replaced by zero planes when ``zero_fill`` (default: for position-dependent
    models, see :attr:`LoadedModel.position_dependent`).
    """
    zero_fill = lm.position_dependent if zero_fill is None else zero_fill
    bad = [k for k in kinds if k not in FEATURE_KINDS]
    if bad:
        raise EvalInputError(f"unknown feature kind(s) {bad}; choose from {FEATURE_KINDS}")
    tag = f"{data.fingerprint()}__{subset_tag(channels, zero_fill)}"
    paths = {k: Path(cache_dir) / lm.key / f"{data.name}__{tag}__{k}.npy" for k in kinds} if cache_dir else {}
    out: dict[str, np.ndarray] = {}
    for k, p in paths.items():
        if p.is_file():
            out[k] = np.load(p)
    todo = [k for k in kinds if k not in out]
    if not todo:
        return out
    images, names = select_channels(data, channels, zero_fill)
    if hasattr(lm.model, "numpy_features"):  # untrained references (raw pixels, hand-crafted): one vector per kind
        vec = lm.model.numpy_features(images, names)
        every = {k: Path(cache_dir) / lm.key / f"{data.name}__{tag}__{k}.npy" for k in FEATURE_KINDS} \
            if cache_dir else {}
        _save_features({k: vec for k in FEATURE_KINDS}, every)  # one vector serves every kind
        return out | {k: vec for k in todo}
    if "all_tokens" in todo and len({im.shape for im in images}) > 1:
        raise EvalInputError(f"dataset {data.name}: 'all_tokens' features need one channel count and image size")
    acc: dict[str, list[np.ndarray]] = {k: [] for k in todo}
    pc_rows: list[dict[str, np.ndarray]] = []  # per_channel: one {name: vector} per image, in batch order
    from tqdm.auto import tqdm

    # group equal shapes so a batch never mixes image sizes; results are put back in dataset order
    order = sorted(range(len(images)), key=lambda i: images[i].shape[1:])
    bar = tqdm(total=len(images), desc=f"features {lm.label} / {data.name} [{subset_tag(channels)}]",
               disable=not progress, leave=False)
    chunks: list[list[int]] = []
    for _, grp in itertools.groupby(order, key=lambda i: images[i].shape[1:]):
        g = list(grp)
        chunks += [g[i : i + batch_size] for i in range(0, len(g), batch_size)]
    for chunk in chunks:
        out_b = lm.model(make_batch(lm, [images[i] for i in chunk], [names[i] for i in chunk]))
        if "cls" in acc:
            acc["cls"].append(out_b.cls.float().reshape(len(chunk), -1).cpu().numpy())
        if "patch_mean" in acc:
            acc["patch_mean"].append(torch.stack([t.float().mean((0, 1, 2)) for t in out_b.patch_tokens]).cpu().numpy())
        if "all_tokens" in acc:
            acc["all_tokens"].append(torch.stack([t.float().reshape(-1) for t in out_b.patch_tokens]).cpu().numpy())
        if "per_channel" in acc:
            pc_rows += [{k: v.float().cpu().numpy() for k, v in d.items()} for d in out_b.per_channel_by_name()]
        bar.update(len(chunk))
    bar.close()
    inv = np.argsort(np.array(order))
    if "per_channel" in acc:
        acc["per_channel"] = [per_channel_matrix(pc_rows)]
    return out | _save_features({k: np.concatenate(acc[k])[inv] for k in todo}, paths)


def per_channel_matrix(rows: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """``(N, K * D)``: each row's per-channel vectors in the order the channel names first appear, zeros where
    an image lacks a channel, so a column always means the same channel."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if not rows:
        return np.zeros((0, 0), np.float32)
    dim = len(next(iter(rows[0].values())))
    out = np.zeros((len(rows), len(keys) * dim), np.float32)
    for i, r in enumerate(rows):
        for j, k in enumerate(keys):
            if k in r:
                out[i, j * dim : (j + 1) * dim] = r[k]
    return out


def _save_features(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Write each array to its cache path (when caching) via a temporary name; returns ``arrays``."""
    for k, arr in arrays.items():
        if k in paths:
            p = paths[k]
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}.npy")
            np.save(tmp, arr)
            os.replace(tmp, p)
    return arrays
