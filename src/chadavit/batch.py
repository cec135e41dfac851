"""`ChannelBatch`: the one batch type for images whose channel counts differ.

Every channel plane of every image is stacked along one axis, image after image, so a batch of a
1-channel and a 10-channel image holds 11 planes and no padding. Data loaders build it, models
consume it, objectives and evaluation pass it around, and embedding writes from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from chadavit.data.normalize import (
    SUPPORTED_DTYPES,
    ChannelStats,
    NormalizationMethod,
    check_method,
    match_stats,
    normalize_planes,
)
from chadavit.errors import ChadavitError


class InvalidImageError(ChadavitError, ValueError):
    """An input image cannot be embedded; the message names the image and the problem."""


def _name(i: int, sources: Sequence[str] | None) -> str:
    return f"image {i} ({sources[i]})" if sources is not None else f"image {i}"


@dataclass
class ChannelBatch:
    """Images of different channel counts packed without padding.

    Attributes:
        planes: float tensor ``(sum(num_channels), H, W)``; the planes of image 0 first, then image 1, ...
        num_channels: long tensor ``(B,)`` with the channel count of each image.
        channel_names: optional channel identity of every plane, one tuple of names per image
            (e.g. ``("DNA", "Actin")``); models with identity channel embeddings look these up in
            their vocabulary.
        sources: optional per-image provenance (file names, ids) used in error messages and outputs.
        raw: optional per-image ``(C_i, H, W)`` arrays as given, in their own dtype, for reference encoders
            that measure raw intensities (CellProfiler); ``from_images(..., keep_raw=True)`` sets it.
    """

    planes: torch.Tensor
    num_channels: torch.Tensor
    channel_names: tuple[tuple[str, ...], ...] | None = None
    sources: tuple[str, ...] | None = None
    raw: tuple[np.ndarray, ...] | None = field(default=None, repr=False, compare=False)
    _offsets: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.num_channels = torch.as_tensor(self.num_channels, dtype=torch.long).reshape(-1)
        if self.planes.ndim != 3:
            raise InvalidImageError(f"planes must be (sum of channels, H, W), got shape {tuple(self.planes.shape)}")
        if int(self.num_channels.sum()) != self.planes.shape[0]:
            raise InvalidImageError(
                f"num_channels sums to {int(self.num_channels.sum())} but planes holds {self.planes.shape[0]} planes"
            )
        if self.num_channels.numel() and int(self.num_channels.min()) < 1:
            i = int(torch.nonzero(self.num_channels < 1)[0])
            raise InvalidImageError(f"{_name(i, self.sources)} has zero channels")
        if self.channel_names is not None:
            self.channel_names = tuple(tuple(str(n) for n in names) for names in self.channel_names)
            if len(self.channel_names) != len(self):
                raise InvalidImageError(f"channel_names has {len(self.channel_names)} entries for {len(self)} images")
            for i, (names, c) in enumerate(zip(self.channel_names, self.num_channels.tolist())):
                if len(names) != c:
                    raise InvalidImageError(f"{_name(i, self.sources)} has {c} channels but {len(names)} channel names")
        if self.sources is not None:
            self.sources = tuple(str(s) for s in self.sources)
            if len(self.sources) != len(self):
                raise InvalidImageError(f"sources has {len(self.sources)} entries for {len(self)} images")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_images(
        cls,
        images: Sequence[np.ndarray | torch.Tensor],
        channel_names: Sequence[Sequence[str]] | None = None,
        sources: Sequence[str] | None = None,
        normalize: NormalizationMethod = "percentile",
        stats: ChannelStats | None = None,
        keep_raw: bool = False,
    ) -> ChannelBatch:
        """Build a batch from per-image arrays ``(C_i, H, W)`` (uint8, uint16 or float).

        A 2-D array is taken as one channel. Intensities are scaled per channel by
        :func:`chadavit.data.normalize.normalize_planes` (``normalize``), the single place where
        raw pixels become model inputs. ``stats`` are the per-channel-name numbers of the ``"dataset"``
        method. Prefer ``model.make_batch(images)``, which uses what the model was trained with.
        ``keep_raw`` keeps the arrays as given in :attr:`raw` (reference encoders that measure intensities).
        """
        check_method(normalize)
        if len(images) == 0:
            raise InvalidImageError("cannot build a batch from zero images")
        srcs = tuple(str(s) for s in sources) if sources is not None else None
        planes: list[torch.Tensor] = []
        raw: list[np.ndarray] = []
        counts: list[int] = []
        shape: tuple[int, int] | None = None
        for i, img in enumerate(images):
            arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
            if arr.ndim == 2:
                arr = arr[None]
            if arr.ndim != 3:
                raise InvalidImageError(f"{_name(i, srcs)} must have shape (C, H, W), got {arr.shape}")
            if arr.dtype == np.bool_ or arr.dtype not in SUPPORTED_DTYPES:
                raise InvalidImageError(
                    f"{_name(i, srcs)} has unsupported dtype {arr.dtype}; use uint8, uint16 or float"
                )
            if arr.shape[0] == 0:
                raise InvalidImageError(f"{_name(i, srcs)} has zero channels")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = np.unique(np.nonzero(~np.isfinite(arr))[0]).tolist()
                raise InvalidImageError(f"{_name(i, srcs)} has NaN or Inf pixels in channel(s) {bad}")
            hw = (int(arr.shape[1]), int(arr.shape[2]))
            if shape is None:
                shape = hw
            elif hw != shape:
                raise InvalidImageError(
                    f"{_name(i, srcs)} is {hw[0]}x{hw[1]} but image 0 is {shape[0]}x{shape[1]}; "
                    "all images of one batch must share height and width (resize or crop first)"
                )
            names_i = channel_names[i] if channel_names is not None else None
            scaled, st = match_stats(arr, names_i, stats) if normalize == "dataset" else (arr, None)
            planes.append(normalize_planes(scaled, normalize, stats=st))
            counts.append(arr.shape[0])
            if keep_raw:
                raw.append(arr)
        return cls(
            planes=torch.cat(planes, 0),
            num_channels=torch.tensor(counts, dtype=torch.long),
            channel_names=tuple(tuple(n) for n in channel_names) if channel_names is not None else None,
            sources=srcs,
            raw=tuple(raw) if keep_raw else None,
        )

    @classmethod
    def concat(cls, batches: Sequence[ChannelBatch]) -> ChannelBatch:
        """Join batches image-wise (e.g. the crops of a multi-crop view)."""
        if not batches:
            raise InvalidImageError("cannot concatenate zero batches")
        names = None
        if all(b.channel_names is not None for b in batches):
            names = tuple(n for b in batches for n in b.channel_names)  # type: ignore[union-attr]
        sources = None
        if all(b.sources is not None for b in batches):
            sources = tuple(s for b in batches for s in b.sources)  # type: ignore[union-attr]
        raw = None
        if all(b.raw is not None for b in batches):
            raw = tuple(a for b in batches for a in b.raw)  # type: ignore[union-attr]
        return cls(
            planes=torch.cat([b.planes for b in batches], 0),
            num_channels=torch.cat([b.num_channels for b in batches], 0),
            channel_names=names,
            sources=sources,
            raw=raw,
        )

    # ------------------------------------------------------------------ structure
    def __len__(self) -> int:
        return int(self.num_channels.numel())

    @property
    def batch_size(self) -> int:
        return len(self)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.planes.shape[1]), int(self.planes.shape[2])

    @property
    def device(self) -> torch.device:
        return self.planes.device

    @property
    def offsets(self) -> torch.Tensor:
        """Start plane of every image plus the total, shape ``(B + 1,)``, on the CPU."""
        if self._offsets is None:
            counts = self.num_channels.cpu()
            self._offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        return self._offsets

    @property
    def plane_slots(self) -> torch.Tensor:
        """Position of every plane inside its image (0 for its first channel), shape ``(P,)``."""
        counts = self.num_channels.cpu()
        starts = torch.repeat_interleave(self.offsets[:-1], counts)
        return torch.arange(int(counts.sum())) - starts

    @property
    def image_index(self) -> torch.Tensor:
        """Which image every plane belongs to, shape ``(P,)``."""
        counts = self.num_channels.cpu()
        return torch.repeat_interleave(torch.arange(len(counts)), counts)

    def image(self, i: int) -> torch.Tensor:
        """The planes of image ``i`` as ``(C_i, H, W)``."""
        off = self.offsets
        return self.planes[int(off[i]) : int(off[i + 1])]

    def images(self) -> list[torch.Tensor]:
        return list(torch.split(self.planes, self.num_channels.tolist(), 0))

    def select(self, indices: Sequence[int] | torch.Tensor) -> ChannelBatch:
        """A new batch holding images ``indices`` in that order."""
        idx = [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]
        off = self.offsets
        plane_idx = torch.cat([torch.arange(int(off[i]), int(off[i + 1])) for i in idx]) if idx else torch.zeros(0)
        return ChannelBatch(
            planes=self.planes[plane_idx.to(self.planes.device, torch.long)],
            num_channels=self.num_channels[torch.tensor(idx, dtype=torch.long, device=self.num_channels.device)],
            channel_names=tuple(self.channel_names[i] for i in idx) if self.channel_names is not None else None,
            sources=tuple(self.sources[i] for i in idx) if self.sources is not None else None,
            raw=tuple(self.raw[i] for i in idx) if self.raw is not None else None,
        )

    def with_planes(self, planes: torch.Tensor) -> ChannelBatch:
        """Same images and channels, new pixel planes (e.g. after augmentation or a resize); no raw arrays."""
        return replace(self, planes=planes, raw=None, _offsets=None)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ChannelBatch:
        return replace(self, planes=self.planes.to(device, non_blocking=non_blocking), _offsets=self._offsets)

    def pin_memory(self) -> ChannelBatch:
        return replace(self, planes=self.planes.pin_memory(), _offsets=self._offsets)

    def padded(self, num_slots: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense ``(B, S, H, W)`` copy with zero planes and a ``(B, S)`` validity mask (reference/baselines)."""
        s = int(self.num_channels.max()) if num_slots is None else num_slots
        if int(self.num_channels.max()) > s:
            raise InvalidImageError(f"an image has {int(self.num_channels.max())} channels, more than {s} slots")
        h, w = self.image_size
        out = self.planes.new_zeros(len(self), s, h, w)
        mask = torch.zeros(len(self), s, dtype=torch.bool, device=self.planes.device)
        for i, img in enumerate(self.images()):
            out[i, : img.shape[0]] = img
            mask[i, : img.shape[0]] = True
        return out, mask
