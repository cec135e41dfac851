"""What a run trains on, prepared before any step: the datasets, the backbone fitted to them, the loader.

Everything that can fail on bad input happens here, before any work. The backbone depends on the data
(``channel_vocab: auto`` names the data's stains; ``normalization: dataset`` saves the training set's
per-channel statistics with the model; single-cell runs set its crop size).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chadavit.data.augment import MultiCrop
from chadavit.data.dataset import ChannelDataset
from chadavit.pretrain import distributed as D
from chadavit.pretrain.config import PretrainConfig
from chadavit.pretrain.data import ensure_synthetic, open_all
from chadavit.pretrain.failures import DatasetTooSmallError
from chadavit.pretrain.loader import EpochBatchSampler, MultiCropDataset, make_pretrain_loader
from chadavit.pretrain.net import build_backbone


@dataclasses.dataclass
class Inputs:
    backbone: nn.Module
    datasets: list[ChannelDataset]
    paths: list[Path]
    normalization: str
    stats: dict[str, Any] | None = None


def check_enough_images(n: int, batch_size: int, world: int, paths: list[Any]) -> None:
    """A one-line error instead of a traceback when no full batch can be drawn (batches are never padded)."""
    if n < batch_size * world:
        where = ", ".join(str(p) for p in paths) or "the training data"
        raise DatasetTooSmallError(
            f"{where}: {n} images (after filters), fewer than one global batch of {batch_size * world} "
            f"(data.batch_size {batch_size} x {world} processes); lower data.batch_size or add images")


def prepare_inputs(cfg: PretrainConfig, paths: list[Path], syn: Path | None, is_main: bool,
                   state: dict[str, Any] | None) -> Inputs:
    """Open the data (rank 0 writes the synthetic studies, the cell views and ``config.yaml``) and build the
    backbone for it; ``state`` (a resumed checkpoint) keeps its normalisation statistics."""
    out = Path(cfg.train.out_dir)
    torch.manual_seed(cfg.train.seed)
    backbone = build_backbone(cfg)
    normalization = backbone.config.normalization if cfg.data.normalization == "auto" else cfg.data.normalization
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(__import__("yaml").safe_dump(cfg.to_dict(), sort_keys=False))
        if syn is not None:
            ensure_synthetic(cfg.data.synthetic, syn)
    D.barrier()
    paths = [*paths, syn] if syn is not None else list(paths)
    datasets = open_all(paths)
    if cfg.data.cells.size > 0:  # single-cell views cut from the real fields, cached under OUT/data by rank 0
        from chadavit.pretrain.data import cell_views

        real_paths = paths[: len(paths) - (syn is not None)]
        if is_main:
            cell_views(cfg, real_paths, datasets)
        D.barrier()
        datasets = cell_views(cfg, real_paths, datasets)
    f = cfg.data.filter
    if f.n_channels or f.channel_names:
        from chadavit.data.filters import apply_filters

        datasets = apply_filters(datasets, f.n_channels or None, f.channel_names or None)
    stats_from = datasets  # the stains' ranges: split_channels re-cuts the same pixels, it must not move them
    if cfg.data.split_channels:
        from chadavit.data.filters import apply_filters

        datasets = apply_filters(datasets, split=True)
    if cfg.model.overrides.get("channel_vocab") == "auto":  # identity embeddings for the data's own stain names
        vocab = sorted({str(n) for d in datasets for names in d.manifest["channel_names"] for n in names})
        torch.manual_seed(cfg.train.seed)
        backbone = build_backbone(cfg, vocab)
    stats = None
    if normalization == "dataset":  # one (low, high) per channel over the training set, saved with the model
        from chadavit.data.stats import channel_stats

        stats = state["normalization_stats"] if state is not None and "normalization_stats" in state \
            else channel_stats(stats_from, seed=cfg.train.seed)
        backbone.config = backbone.config.replace(normalization="dataset", normalization_stats=stats)
    if cfg.data.cells.size > 0:  # the scale it learns at: `chadavit embed` crops at it by default
        backbone.config = backbone.config.replace(crop_size=cfg.data.cells.size)
    return Inputs(backbone, datasets, paths, normalization, stats)


def make_loader(cfg: PretrainConfig, inputs: Inputs, dist_info: D.DistInfo
                ) -> tuple[EpochBatchSampler, torch.utils.data.DataLoader]:
    """The epoch-seeded batch sampler (this rank's share) and the multi-crop loader over ``inputs``."""
    bs, world = cfg.data.batch_size, dist_info.world_size
    ds = MultiCropDataset(inputs.datasets, MultiCrop(cfg.augment), seed=cfg.train.seed,
                          normalization=inputs.normalization, preload_mb=cfg.data.preload_mb, stats=inputs.stats)
    check_enough_images(len(ds), bs, world, inputs.paths)
    sampler = EpochBatchSampler(len(ds), bs, world, dist_info.rank, seed=cfg.train.seed)
    loader = make_pretrain_loader(ds, sampler, cfg.data.num_workers, pin_memory=dist_info.device.type == "cuda")
    return sampler, loader
