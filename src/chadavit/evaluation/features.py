"""Frozen-encoder features, computed once per (model, dataset, channel subset, kind) and cached as ``.npy``.

Model specs (``chadavit eval --model SPEC``):

``random:NAME[,key=value...]``  a registered preset (``chadavit models list``) at random init (seed 0), config
                               overrides after commas, e.g. ``random:fixed_channel_vit_tiny,in_chans=3``
``NAME``                       same as ``random:NAME``
``DIR``                        a ``save_pretrained`` folder (``model.safetensors`` + ``config.json``)
``official:PATH[:teacher]``    an official ChAda-ViT Lightning checkpoint (student unless ``:teacher``)
``raw_pixels``                 per-crop standardised raw pixels (baseline)
``cellprofiler``               CellProfiler per-cell measurements from cp_measure (baseline)
``handcrafted``                the old hand-written CellProfiler-style statistics (for comparison only)
``pixel_stats``                a fixed, untrained pixel-statistics encoder (tests; ``pixels``: its old name)
``hybrid:SPEC``                CellProfiler beside SPEC's CLS (the references: :mod:`chadavit.models.references`)
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

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.evaluation.data import EvalData, EvalInputError
from chadavit.models.encoder import is_reference_spec, load_encoder, prepare_encoder
from chadavit.models.references import ReferenceEncoder, hybrid_features

log = logging.getLogger(__name__)
FEATURE_KINDS = ("cls", "patch_mean", "per_channel", "all_tokens")
REFERENCE_LABELS = {"cellprofiler": "CellProfiler (cp_measure)"}  # how a reference is named in tables


# ---------------------------------------------------------------------------------------------- model specs
@dataclass
class LoadedModel:
    """An encoder (:class:`chadavit.models.encoder.Encoder`) with its label in tables and its feature-cache key.

    ``parts`` makes it a combination read from two encoders' cached features: ``(CellProfiler, model)`` for the
    hybrid (:mod:`chadavit.evaluation.cellprofiler`), so its cells are measured once, by the CellProfiler row.
    """

    spec: str
    label: str
    model: nn.Module
    key: str  # cache key: label + weight hash
    parts: tuple[LoadedModel, LoadedModel] | None = None

    @property
    def normalization(self) -> str:
        return str(self.model.config.normalization)

    @property
    def one_vector(self) -> bool:
        """A reference computing one vector per image (raw pixels, CellProfiler, ...): every read-out is it."""
        return isinstance(self.model, ReferenceEncoder)

    @property
    def physical_units(self) -> bool:
        """Measurements in physical units (CellProfiler, the old statistics): distance read-outs standardise them
        first (:attr:`chadavit.models.references.base.ReferenceEncoder.physical_units`)."""
        return self.one_vector and bool(self.model.physical_units)

    @property
    def position_dependent(self) -> bool:
        """True when a channel's meaning is its slot (fixed-channel stem, concatenated per-channel CLS, measured
        references): a missing channel is then given as a zero plane in place rather than left out."""
        cfg = self.model.config
        return "fixed" in cfg.architecture or cfg.pooling == "concat"


def weights_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()[:12]


def _label(spec: str) -> str:
    """The name a spec gets in tables and figures (and its cache folder)."""
    from chadavit.models.spec import is_official, split_official_options

    if is_reference_spec(spec) or spec.startswith(("hf:", "random:")):
        return REFERENCE_LABELS.get(spec, spec)
    base, opts = split_official_options(spec)
    if is_official(base):
        rest = base.removeprefix("official:")
        teacher = rest.endswith(":teacher")
        path = rest.removesuffix(":teacher").removesuffix(":student")
        label = f"official:{Path(path).stem}" + (":teacher" if teacher else "")
        return label + "".join(f",{k}={v}" for k, v in opts.items())  # 2 vs 12 heads are different models
    if Path(spec).is_dir() or Path(spec).is_file():
        return Path(spec).resolve().name if Path(spec).is_dir() else Path(spec).resolve().parent.name
    return f"random:{spec}"


def cache_key(label: str, model: nn.Module) -> str:
    """``label`` (file-name safe) + the hash of the weights as loaded."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60] + "-" + weights_hash(model)


def load_model_spec(spec: str, device: str | torch.device = "cpu", precision: str = "fp32") -> LoadedModel:
    """Turn a ``--model`` spec into a frozen encoder (:func:`chadavit.models.load_encoder`) with its label.

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
    if spec.startswith("hybrid:"):  # read from its parts' features, like the hybrid rows of a report
        from chadavit.evaluation.cellprofiler import hybrid_models

        cp = load_model_spec("cellprofiler", device, precision)
        return hybrid_models([cp, load_model_spec(spec.removeprefix("hybrid:"), device, precision)], [cp.label])[0]
    model = load_encoder(spec, allow_bare_preset=True)  # float32 on the CPU: the key hashes the weights as loaded
    label = _label(spec)
    key = cache_key(label, model)
    model = prepare_encoder(model, device, precision, cast=not is_reference_spec(spec))
    if any(p.dtype == torch.bfloat16 for p in model.parameters()):
        key += "-bf16"
    return LoadedModel(spec=spec, label=label, model=model, key=key)


# ---------------------------------------------------------------------------------------------- extraction
def make_batch(lm: LoadedModel, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> ChannelBatch:
    """The encoder's own batch (its validation and scaling), on the encoder's device."""
    batch = lm.model.make_batch(images, names)
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


def feature_cache_path(lm: LoadedModel, data: EvalData, kind: str, channels: Sequence[int] | None, zero_fill: bool,
                       cache_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`extract_features` caches one kind of ``lm``'s features of ``data`` (and a channel subset)."""
    tag = f"{data.fingerprint()}__{subset_tag(channels, zero_fill)}"
    return Path(cache_dir) / lm.key / f"{data.name}__{tag}__{kind}.npy"


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
    if lm.parts is not None:  # the hybrid: its two blocks from their encoders' (cached) features
        kw = {"channels": channels, "batch_size": batch_size, "cache_dir": cache_dir, "progress": progress,
              "zero_fill": zero_fill}
        cp, learned = (extract_features(part, data, ("cls",), **kw)["cls"]  # type: ignore[arg-type]
                       for part in lm.parts)
        vec = hybrid_features(cp, learned)
        return {k: vec for k in kinds}
    every = {k: feature_cache_path(lm, data, k, channels, zero_fill, cache_dir) for k in FEATURE_KINDS} \
        if cache_dir else {}
    out = {k: np.load(every[k]) for k in kinds if k in every and every[k].is_file()}
    todo = [k for k in kinds if k not in out]
    if not todo:
        return out
    images, names = select_channels(data, channels, zero_fill)
    if lm.one_vector:  # a reference's vector is every read-out: computed once, cached under every kind
        vec = _forward_all(lm, images, names, ("cls",), batch_size, progress, f"{data.name} [{subset_tag(channels)}]")
        _save_features({k: vec["cls"] for k in FEATURE_KINDS}, every)
        return out | {k: vec["cls"] for k in todo}
    if "all_tokens" in todo and len({im.shape for im in images}) > 1:
        raise EvalInputError(f"dataset {data.name}: 'all_tokens' features need one channel count and image size")
    got = _forward_all(lm, images, names, todo, batch_size, progress, f"{data.name} [{subset_tag(channels)}]")
    return out | _save_features(got, {k: every[k] for k in todo if k in every})


def _forward_all(lm: LoadedModel, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]],
                 kinds: Sequence[str], batch_size: int, progress: bool, what: str) -> dict[str, np.ndarray]:
    """Every image through ``encoder.make_batch`` and the encoder, batches of one image size; ``kinds`` read out
    (:meth:`EncoderOutput.pooled`), in the order of ``images``."""
    from tqdm.auto import tqdm

    acc: dict[str, list[np.ndarray]] = {k: [] for k in kinds if k != "per_channel"}
    pc_rows: list[dict[str, np.ndarray]] = []  # per_channel: one {name: vector} per image, in batch order
    # group equal shapes so a batch never mixes image sizes; results are put back in dataset order
    order = sorted(range(len(images)), key=lambda i: images[i].shape[1:])
    bar = tqdm(total=len(images), desc=f"features {lm.label} / {what}", disable=not progress, leave=False)
    chunks: list[list[int]] = []
    for _, grp in itertools.groupby(order, key=lambda i: images[i].shape[1:]):
        g = list(grp)
        chunks += [g[i : i + batch_size] for i in range(0, len(g), batch_size)]
    for chunk in chunks:
        out_b = lm.model(make_batch(lm, [images[i] for i in chunk], [names[i] for i in chunk]))
        for k in kinds:
            if k == "per_channel":
                pc_rows += [{c: v.cpu().numpy() for c, v in d.items()} for d in out_b.pooled(k)]
            else:
                acc[k].append(out_b.pooled(k).cpu().numpy())  # type: ignore[union-attr]
        bar.update(len(chunk))
    bar.close()
    inv = np.argsort(np.array(order))
    got = {k: np.concatenate(v)[inv] for k, v in acc.items()}
    if "per_channel" in kinds:
        got["per_channel"] = per_channel_matrix(pc_rows)[inv]
    return got


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
