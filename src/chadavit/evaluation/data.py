"""`EvalData`: the one in-memory form every dataset adapter returns.

Images keep their raw dtype (uint8/uint16/float) and are normalised only when batched
(:meth:`chadavit.ChannelBatch.from_images`), exactly as in training and embedding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from chadavit.errors import ChadavitError


class EvalInputError(ChadavitError, ValueError):
    """A suite setting or dataset the evaluation cannot use (unknown adapter, feature kind, mismatched labels)."""


class DatasetLayoutError(ChadavitError, FileNotFoundError):
    """A benchmark dataset is missing or not laid out as its adapter expects; the message shows the layout."""


@dataclass
class EvalData:
    """Images, their channel names and one row of labels/metadata per image.

    Attributes:
        name: dataset name used in tables and cache keys.
        images: ``(C_i, H, W)`` arrays in their stored dtype.
        channel_names: per-image channel names (same length as ``images``).
        labels: one row per image; an optional ``split`` column (``train``/``val``/``test``) fixes the split for
            every seed (``val`` rows are not used by the probes), otherwise splits are drawn per seed.
        info: free-form provenance (source path, class names, ...).
    """

    name: str
    images: list[np.ndarray]
    channel_names: list[tuple[str, ...]]
    labels: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.channel_names) or len(self.images) != len(self.labels):
            raise EvalInputError(
                f"dataset {self.name}: {len(self.images)} images, {len(self.channel_names)} channel-name entries, "
                f"{len(self.labels)} label rows; they must match"
            )
        self.channel_names = [tuple(str(c) for c in n) for n in self.channel_names]
        for i, (img, names) in enumerate(zip(self.images, self.channel_names)):
            if img.ndim != 3 or img.shape[0] != len(names):
                raise EvalInputError(f"dataset {self.name}: image {i} has shape {img.shape} "
                                     f"but {len(names)} channel names")
        self.labels = self.labels.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def fixed_channels(self) -> tuple[str, ...] | None:
        """The channel names shared by every image, or None when images differ."""
        first = self.channel_names[0] if self.channel_names else None
        return first if all(n == first for n in self.channel_names) else None

    def subset(self, idx: Sequence[int] | np.ndarray) -> EvalData:
        idx = [int(i) for i in idx]
        info = {k: v for k, v in self.info.items() if k != "_fingerprint"}
        return EvalData(self.name, [self.images[i] for i in idx], [self.channel_names[i] for i in idx],
                        self.labels.iloc[idx].reset_index(drop=True), info)

    def fingerprint(self) -> str:
        """Content hash of pixels and channel names (the feature-cache key); memoised per image list."""
        memo = self.info.get("_fingerprint")
        if memo is not None and memo[0] is self.images and memo[1:3] == (len(self.images), self.name):
            return memo[3]
        fp = self._fingerprint()
        self.info["_fingerprint"] = (self.images, len(self.images), self.name, fp)
        return fp

    def _fingerprint(self) -> str:
        h = hashlib.sha256(self.name.encode())
        for img, names in zip(self.images, self.channel_names):
            a = np.ascontiguousarray(img)
            h.update(f"{a.dtype.str}{a.shape}{names}".encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]


def resize_images(images: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """Resize every ``(C, H, W)`` image to ``size x size`` keeping its dtype (bilinear, range preserved)."""
    from skimage.transform import resize

    out = []
    for img in images:
        if img.shape[1] == size and img.shape[2] == size:
            out.append(img)
            continue
        r = resize(img.astype(np.float32), (img.shape[0], size, size), order=1, preserve_range=True, anti_aliasing=True)
        if img.dtype.kind in "ui":
            r = np.clip(np.rint(r), np.iinfo(img.dtype).min, np.iinfo(img.dtype).max).astype(img.dtype)
        out.append(r.astype(img.dtype, copy=False))
    return out
