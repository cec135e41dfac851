"""Channel embeddings: by slot (the channel's position in its image) or by channel identity (its name)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from chadavit.batch import ChannelBatch, InvalidImageError

log = logging.getLogger(__name__)

UNKNOWN_CHANNEL = "<unknown>"


class SlotChannelEmbed(nn.Module):
    """One learned vector per channel position 0..num_slots-1, as in the official ChAda-ViT.

    Channel order matters: the first channel of every image gets slot 0, whatever its stain.
    """

    def __init__(self, num_slots: int, embed_dim: int) -> None:
        super().__init__()
        self.num_slots = num_slots
        self.weight = nn.Parameter(torch.zeros(num_slots, embed_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def check(self, batch: ChannelBatch) -> None:
        counts = batch.num_channels.tolist()
        for i, c in enumerate(counts):
            if c > self.num_slots:
                name = f"image {i}" + (f" ({batch.sources[i]})" if batch.sources else "")
                raise InvalidImageError(
                    f"{name} has {c} channels but this model has {self.num_slots} channel slots; use a model "
                    "with more slots or identity channel embeddings, or select at most "
                    f"{self.num_slots} channels"
                )

    def forward(self, batch: ChannelBatch) -> torch.Tensor:
        """``(P, D)``: the embedding of every plane of the batch."""
        self.check(batch)
        return self.weight[batch.plane_slots.to(self.weight.device)]


class IdentityChannelEmbed(nn.Module):
    """One learned vector per channel name of a vocabulary stored with the model.

    Names are matched case-insensitively. Any number of channels is accepted. Fallback: a name that
    is not in the vocabulary gets the learned ``<unknown>`` vector (row 0), trained on channels whose
    names are unknown or withheld, and a warning names it once.
    """

    def __init__(self, vocab: Sequence[str], embed_dim: int) -> None:
        super().__init__()
        self.vocab = [str(v) for v in vocab]
        self._index = {name.lower(): i + 1 for i, name in enumerate(self.vocab)}
        self.weight = nn.Parameter(torch.zeros(len(self.vocab) + 1, embed_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)
        self._warned: set[str] = set()

    def lookup(self, names: Sequence[str]) -> torch.Tensor:
        ids = [self._index.get(str(n).lower(), 0) for n in names]
        unknown = sorted({str(n) for n, i in zip(names, ids) if i == 0 and n} - self._warned)
        if unknown:
            self._warned.update(unknown)
            log.warning("channel name(s) %s not in the model's vocabulary %s; using the %s embedding",
                        unknown, self.vocab, UNKNOWN_CHANNEL)
        return torch.tensor(ids, dtype=torch.long)

    def forward(self, batch: ChannelBatch) -> torch.Tensor:
        if batch.channel_names is None:
            raise InvalidImageError(
                "this model embeds channels by identity and needs channel names: pass channel_names to "
                f"ChannelBatch.from_images (known names: {', '.join(self.vocab) or 'none'})"
            )
        flat = [n for names in batch.channel_names for n in names]
        return self.weight[self.lookup(flat).to(self.weight.device)]
