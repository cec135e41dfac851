"""What every encoder returns, whatever its architecture."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EncoderOutput:
    """Per-image embeddings of a :class:`~chadavit.ChannelBatch`.

    Attributes:
        cls: ``(B, D)`` image embeddings (the CLS token after the final norm).
        patch_tokens: one ``(C_i, h, w, D)`` tensor per image (channel, row, column).
        attentions: with ``return_attention=True``, one ``(heads, C_i, h, w)`` tensor per image: the
            last block's attention of the CLS token over every patch of every channel.
    """

    cls: torch.Tensor
    patch_tokens: list[torch.Tensor]
    attentions: list[torch.Tensor] | None = None

    def mean_patch(self) -> torch.Tensor:
        """``(B, D)``: the mean of every patch token of every channel of each image."""
        return torch.stack([t.mean(dim=(0, 1, 2)) for t in self.patch_tokens])

    def reorder(self, index: torch.Tensor) -> EncoderOutput:
        """The outputs of images ``index`` in that order."""
        idx = index.tolist()
        return EncoderOutput(
            cls=self.cls[index.to(self.cls.device)],
            patch_tokens=[self.patch_tokens[i] for i in idx],
            attentions=[self.attentions[i] for i in idx] if self.attentions is not None else None,
        )
