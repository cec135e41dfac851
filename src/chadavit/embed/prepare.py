"""Per image, on a reader thread: read the pixels, pick channels, check them, normalise and cut crop boxes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chadavit.batch import ChannelBatch
from chadavit.data.crops import (
    NUCLEUS_CHANNEL_GUESSES,
    Crop,
    find_nuclei,
    full_crop,
    grid_crops,
    guess_nucleus_channel,
    nucleus_crops,
)
from chadavit.embed.channels import ChannelError, ChannelSpec
from chadavit.embed.config import RESERVED_METADATA, EmbedConfig
from chadavit.embed.sources import ImageRecord
from chadavit.errors import ChadavitError

log = logging.getLogger("chadavit.embed")

MIN_COVERAGE = 0.25  # an image filling less of a crop than this is mostly zero padding: refused


class ImageTooSmallError(ChadavitError, ValueError):
    """An image too small for the model to see anything but padding; recorded in OUT.errors.csv."""


@dataclass
class Prepared:
    """An image read, normalised and cut into crop boxes, waiting for its crops to be embedded."""

    index: int
    record: ImageRecord
    field: np.ndarray | None  # (C, H, W) float32, normalised; dropped once every crop is embedded
    names: list[str]
    source_names: list[str]
    crops: list[Crop]
    attention: bool = False
    cls: list[np.ndarray | None] = field(default_factory=list)
    meanpatch: list[np.ndarray | None] = field(default_factory=list)
    per_channel: list[dict[str, np.ndarray] | None] = field(default_factory=list)  # {channel name: (D,)} per crop
    remaining: int = 0
    failed: bool = False
    warnings: list[str] = field(default_factory=list)  # kept in OUT.errors.csv with level "warning"
    shape: tuple[int, int, int] = (0, 0, 0)
    cp: Any = None  # a DataFrame of cp_ columns, one row per crop (--features cellprofiler)
    cp_meta: list[dict[str, Any]] = field(default_factory=list)  # CPError / CPTouchesBorder per crop

    def __post_init__(self) -> None:
        if self.field is not None:
            self.shape = tuple(self.field.shape)  # type: ignore[assignment]

    def rows(self, cfg: EmbedConfig, learned: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The image's metadata rows (one per crop, or one with ``--per-image``) and its feature blocks."""
        rec = self.record
        h, w = self.shape[1:]
        meta = {(f"Input{k}" if k in RESERVED_METADATA else k): v for k, v in rec.metadata.items()}
        base = {"ImageId": rec.image_id, "ImageIndex": self.index, **meta,
                "Channels": ",".join(self.names), "SourceChannels": ",".join(self.source_names),
                "Source": ";".join(rec.sources), "ImageHeight": h, "ImageWidth": w, "CropMode": cfg.crops}
        feats: dict[str, Any] = {}
        if learned:
            feats = {"cls": np.stack(self.cls), "meanpatch": np.stack(self.meanpatch)}
            if "per_channel" in cfg.feature_blocks:
                feats |= {f"chan_{name}": np.stack([d[name] for d in self.per_channel])  # type: ignore[index]
                          for name in self.per_channel[0]}  # type: ignore[union-attr]
            feats = {k: v for k, v in feats.items() if k in cfg.feature_blocks or k.startswith("chan_")}
        if self.cp is not None:
            feats["cp"] = self.cp
        if cfg.per_image:  # CellProfiler: the mean over the cells measured (NaN rows left out)
            errs = sorted({str(m["CPError"]) for m in self.cp_meta if m.get("CPError")})
            cp_meta = {"CPError": "; ".join(errs) or None} if self.cp is not None else {}
            return [{**base, "NumCrops": len(self.crops), **cp_meta}], {
                k: (v.mean().to_frame().T if hasattr(v, "columns") else v.mean(0, keepdims=True))
                for k, v in feats.items()}
        rows = []
        for k, c in enumerate(self.crops):
            rows.append({**base, "CropIndex": k, "CropY0": c.y0, "CropX0": c.x0, "CropY1": c.y1, "CropX1": c.x1,
                         **dict(c.meta), **(self.cp_meta[k] if self.cp_meta else {})})
        return rows, feats


class ImagePreparer:
    """Turns an :class:`ImageRecord` into a :class:`Prepared` image; thread-safe (the only shared state is the
    set of once-per-run warnings already given, where a race at worst repeats one)."""

    def __init__(self, cfg: EmbedConfig, spec: ChannelSpec, crop_size: int, normalize: str, max_channels: int,
                 patch_size: int = 16, model_size: int | None = None,
                 normalization_stats: dict[str, list[float]] | None = None) -> None:
        self.cfg, self.spec = cfg, spec
        self.crop_size, self.normalize, self.max_channels = crop_size, normalize, max_channels
        self.normalization_stats = normalization_stats  # "dataset": the model's per-channel training-set numbers
        self.patch_size, self.model_size = patch_size, model_size or crop_size
        self._said: set[str] = set()  # warnings given once per run, not once per image

    def check_size(self, image_id: str, h: int, w: int) -> list[str]:
        """Refuse images the model would see as padding; return warnings for ones smaller than a crop.

        Below one patch per side nothing can be embedded; in grid/nuclei mode an image covering less
        than :data:`MIN_COVERAGE` of a crop would be mostly zeros. Smaller-than-crop images that pass
        are embedded (zero-padded, or upsampled with ``--crops full``) with a warning.
        """
        s = self.crop_size
        hint = f"use --crop-size {max(min(h, w), self.patch_size)} or --crops full" if self.cfg.crops != "full" else ""
        if min(h, w) < self.patch_size:
            raise ImageTooSmallError(f"{image_id}: image is {h}x{w} pixels, smaller than one {self.patch_size}x"
                                     f"{self.patch_size} patch of the model; nothing to embed")
        if self.cfg.crops == "full":
            if h < self.model_size or w < self.model_size:
                return [f"{image_id}: image is {h}x{w} pixels, upsampled to the model input"]
            return []
        coverage = min(h, s) * min(w, s) / (s * s)
        if coverage < MIN_COVERAGE:
            raise ImageTooSmallError(f"{image_id}: image is {h}x{w} pixels but crops are {s}x{s}: "
                                     f"{100 * (1 - coverage):.0f}% of each crop would be zero padding; {hint}")
        if h < s or w < s:
            return [(f"{image_id}: image is {h}x{w} pixels, smaller than the {s}x{s} crop: "
                     f"{100 * (1 - coverage):.0f}% zero padding ({hint})")]
        return []

    def _nucleus_channel(self, names: list[str], source_names: list[str], all_sources: list[str],
                         image_id: str) -> tuple[int | None, str | None]:
        """Where the nuclei are: an index into the embedded channels, or a source channel read only for that."""
        want = self.cfg.nuclei_channel
        if want is not None:
            self._say_not_nuclear(want, f"--nuclei-channel {want}")
            for lst in (names, source_names):
                if want in lst:
                    return lst.index(want), None
            mapped = [self.spec.channel_map.get(n, n) for n in all_sources]
            for lst in (mapped, all_sources):
                if want in lst:
                    return None, all_sources[lst.index(want)]
            raise ChannelError(f"{image_id}: nuclei channel {want!r} is not among its channels {mapped}")
        k = guess_nucleus_channel(names)
        if k is not None:
            return k, None
        if len(names) == 1:
            self._say_not_nuclear(names[0], f"the only channel, {names[0]},")
            return 0, None
        raise ChannelError(f"{image_id}: --crops nuclei needs --nuclei-channel (one of {names})")

    def _say_not_nuclear(self, channel: str, what: str) -> None:
        """Warn (once) that nuclei are looked for in a channel not named like a nuclear stain."""
        if channel.lower() in {g.lower() for g in NUCLEUS_CHANNEL_GUESSES} or "nuclear" in self._said:
            return
        self._said.add("nuclear")
        log.warning("--crops nuclei: %s is not named like a nuclear stain (%s); nuclei are looked for in it anyway, "
                    "and in a cytoplasmic or protein stain they are cells, speckles or noise: check the crop "
                    "counts, or use --crops grid", what, ", ".join(NUCLEUS_CHANNEL_GUESSES))

    def prepare(self, item: tuple[int, ImageRecord]) -> Prepared:
        index, rec = item
        nuclei = self.cfg.crops == "nuclei"
        nuc_plane = None
        if rec.channel_names is not None:
            idx, names = self.spec.select(rec.channel_names, rec.image_id)
            src = [rec.channel_names[i] for i in idx]
            k, extra = self._nucleus_channel(names, src, rec.channel_names, rec.image_id) if nuclei else (None, None)
            arr, _ = rec.read(src + ([extra] if extra is not None else []))
            if extra is not None:
                arr, nuc_plane = arr[:-1], arr[-1]
        else:
            arr, have = rec.read(None)
            idx, names = self.spec.select(have, rec.image_id)
            src = [have[i] for i in idx]
            k, extra = self._nucleus_channel(names, src, have, rec.image_id) if nuclei else (None, None)
            if extra is not None:
                nuc_plane = arr[have.index(extra)]
            arr = arr[idx]
        arr = np.asarray(arr)
        field_ = self.scale(arr, names, rec.image_id)  # validated too: dtype, NaN/Inf
        if nuclei and nuc_plane is None:
            nuc_plane = arr[k]
        if self.max_channels and arr.shape[0] > self.max_channels:
            raise ChannelError(f"{rec.image_id}: {arr.shape[0]} channels but the model has {self.max_channels} "
                               "channel slots; choose channels with --channels")
        h, w = arr.shape[1:]
        warnings = self.check_size(rec.image_id, h, w)
        measure, found = "cellprofiler" in self.cfg.feature_groups, None
        if self.cfg.crops == "grid":
            crops = grid_crops(h, w, self.crop_size, self.cfg.stride)
        elif self.cfg.crops == "full":
            crops = full_crop(h, w)
        else:
            found = find_nuclei(np.asarray(nuc_plane), min_area=self.cfg.min_nucleus_area) if measure else None
            crops = nucleus_crops(np.asarray(nuc_plane), self.crop_size, min_area=self.cfg.min_nucleus_area,
                                  max_crops=self.cfg.max_crops_per_image, found=found[0] if found else None)
        if self.cfg.max_crops_per_image is not None and len(crops) > self.cfg.max_crops_per_image:
            keep = np.unique(np.linspace(0, len(crops) - 1, self.cfg.max_crops_per_image).round().astype(int))
            crops = [crops[i] for i in keep]
        cp, cp_meta = self._cellprofiler(arr, names, crops, found, k) if measure else (None, [])
        n = len(crops)
        att = index < self.cfg.save_attention or rec.image_id in (self.cfg.attention_images or ())
        return Prepared(index, rec, field_, names, src, crops, att, [None] * n, [None] * n, [None] * n, n,
                        warnings=warnings, cp=cp, cp_meta=cp_meta)

    def scale(self, arr: np.ndarray, names: list[str], image_id: str) -> np.ndarray:
        """The whole field validated and scaled on the one pixel road (:meth:`ChannelBatch.from_images`), once:
        the crops of a field share its scaling, so they are cut from it afterwards."""
        stats = self.normalization_stats if self.normalize == "dataset" else None
        batch = ChannelBatch.from_images([arr], [names], [image_id], normalize=self.normalize,  # type: ignore[arg-type]
                                         stats=stats)
        return batch.planes.numpy()

    def _cellprofiler(self, arr: np.ndarray, names: list[str], crops: list[Crop], found: Any,
                      k: int | None) -> tuple[Any, list[dict[str, Any]]]:
        """CellProfiler measurements of each crop's cell, on the raw pixels (see chadavit.embed.cpfeatures)."""
        from chadavit.embed.cpfeatures import measure_central_crops, measure_nuclei_crops

        if self.cfg.crops == "nuclei":
            return measure_nuclei_crops(arr, names, crops, found[1], self.cfg.cell_channel, k)
        return measure_central_crops(arr, names, crops, self.cfg.cell_channel, self.cfg.nuclei_channel)
