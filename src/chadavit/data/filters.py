"""Dataset filters: keep the images with a given channel count or channel names, or split images into channels.

Why here (and not in the trainer): a filter is a property of "which images", usable wherever a
:class:`~chadavit.data.dataset.ChannelDataset` is given (pretraining, embedding, evaluation). Both
functions return ordinary ``ChannelDataset`` views (a derived manifest over the same Zarr planes), so
nothing downstream needs to know they were applied.

- ``filter_dataset(ds, n_channels=3)``: the images with exactly 3 channels (the paper's fixed 3-channel ViT
  is trained on the 3-channel part of IDRCell100k).
- ``filter_dataset(ds, channel_names=["DNA", "actin"])``: the images whose channels are exactly these, in
  this order (case-insensitive).
- ``split_channels(ds)``: every channel becomes an image of its own (``<image_id>#c<k>``): the training set
  of the One-Channel ViT, drawn from a mixed-channel dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from chadavit.data.dataset import ChannelDataset


def _counts(ds: ChannelDataset) -> dict[int, int]:
    return {int(k): int(v) for k, v in ds.manifest["n_channels"].value_counts().sort_index().items()}


def filter_dataset(ds: ChannelDataset, n_channels: int | Sequence[int] | None = None,
                   channel_names: Sequence[str] | None = None) -> ChannelDataset:
    """The images of ``ds`` with ``n_channels`` channels (one count or several) and/or exactly ``channel_names``.

    ``None`` or an empty value means "any". The result may be empty (callers decide whether that is an error;
    :func:`describe_channels` gives a message listing what the dataset does hold).
    """
    mask = np.ones(len(ds), dtype=bool)
    if n_channels is not None and not (isinstance(n_channels, Sequence) and len(n_channels) == 0):
        wanted = {int(n_channels)} if isinstance(n_channels, (int, np.integer)) else {int(n) for n in n_channels}
        mask &= ds.manifest["n_channels"].isin(wanted).to_numpy()
    if channel_names:
        want = [str(n).lower() for n in channel_names]
        mask &= np.array([[str(n).lower() for n in names] == want for names in ds.manifest["channel_names"]],
                         dtype=bool).reshape(-1)
    return ds.subset(mask)


def split_channels(ds: ChannelDataset) -> ChannelDataset:
    """One single-channel image per channel of every image (same planes; ids ``<image_id>#c<k>``).

    The derived rows have no pixel checksum of their own (``checksum`` is empty), so ``verify`` does not
    apply to the view; verify the source dataset instead.
    """
    m = ds.manifest
    reps = m["n_channels"].to_numpy().astype(int)
    rows = m.loc[m.index.repeat(reps)].reset_index(drop=True)
    k = np.concatenate([np.arange(n) for n in reps]) if len(reps) else np.zeros(0, dtype=int)
    rows["plane_offset"] = rows["plane_offset"].to_numpy().astype(np.int64) + k
    rows["channel_names"] = [[names[j]] for names, j in zip(rows["channel_names"], k)]
    rows["image_id"] = [f"{i}#c{j}" for i, j in zip(rows["image_id"], k)]
    rows["n_channels"] = 1
    rows["checksum"] = ""
    return ChannelDataset(ds.path, pd.DataFrame(rows))


def describe_channels(ds: ChannelDataset) -> str:
    """``"3 ch: 120 images, 5 ch: 40 images"``: what a filter could select (for error messages)."""
    return ", ".join(f"{c} ch: {n} images" for c, n in _counts(ds).items()) or "no images"


def apply_filters(datasets: Sequence[ChannelDataset], n_channels: int | Sequence[int] | None = None,
                  channel_names: Sequence[str] | None = None, split: bool = False) -> list[ChannelDataset]:
    """Filter (then optionally split) every dataset; the empty results are dropped.

    Raises :class:`~chadavit.data.dataset.DatasetError` naming every dataset and its channel counts when
    nothing is left, so a wrong filter fails before any training starts.
    """
    from chadavit.data.dataset import DatasetError

    out = []
    for ds in datasets:
        f = filter_dataset(ds, n_channels, channel_names)
        if split:
            f = split_channels(f)
        if len(f):
            out.append(f)
    if not out and datasets:
        held = "; ".join(f"{d.path}: {describe_channels(d)}" for d in datasets)
        raise DatasetError(f"data filter (n_channels={n_channels}, channel_names={channel_names}) keeps no image; "
                           f"the datasets hold {held}")
    return out
