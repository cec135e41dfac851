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
        channel_names: the channel names of each image, when the batch named them (keys of
            :meth:`per_channel_by_name`).
    """

    cls: torch.Tensor
    patch_tokens: list[torch.Tensor]
    attentions: list[torch.Tensor] | None = None
    channel_names: tuple[tuple[str, ...], ...] | None = None

    def mean_patch(self) -> torch.Tensor:
        """``(B, D)``: the mean of every patch token of every channel of each image."""
        return torch.stack([t.mean(dim=(0, 1, 2)) for t in self.patch_tokens])

    def per_channel(self) -> list[torch.Tensor]:
        """One ``(C_i, D)`` tensor per image: the mean patch token of each channel (a compact vector per channel).

        A fixed-channel encoder mixes its channels in the stem, so it gives one row (``C_i = 1``).
        """
        return [t.mean(dim=(1, 2)) for t in self.patch_tokens]

    def per_channel_by_name(self) -> list[dict[str, torch.Tensor]]:
        """One ``{channel name: (D,)}`` dict per image (see :meth:`per_channel`).

        Channels are named by the batch's ``channel_names`` (``ch0, ch1, ...`` when it has none); an encoder
        whose tokens do not keep channels apart gives one entry, ``all``.
        """
        out = []
        for i, pc in enumerate(self.per_channel()):
            names = self.channel_names[i] if self.channel_names is not None else None
            if names is None or len(names) != pc.shape[0]:
                mixed = names is not None and pc.shape[0] == 1  # a fixed-channel stem mixed the named channels
                names = ("all",) if mixed else tuple(f"ch{c}" for c in range(pc.shape[0]))
            out.append(dict(zip(names, pc.unbind(0))))
        return out

    def pooled(self, kind: str) -> torch.Tensor | list[dict[str, torch.Tensor]]:
        """One read-out, in float32 (pooling a bf16 output in float32): ``cls`` ``(B, D)``, ``patch_mean``
        ``(B, D)`` (:meth:`mean_patch`), ``all_tokens`` ``(B, C*h*w*D)`` (every patch token of every channel; one
        shape for all images) or ``per_channel`` (:meth:`per_channel_by_name`)."""
        if kind == "cls":
            return self.cls.float().reshape(self.cls.shape[0], -1)
        if kind == "patch_mean":
            return torch.stack([t.float().mean(dim=(0, 1, 2)) for t in self.patch_tokens])
        if kind == "all_tokens":
            return torch.stack([t.float().reshape(-1) for t in self.patch_tokens])
        if kind == "per_channel":
            return [{k: v.float() for k, v in d.items()} for d in self.per_channel_by_name()]
        raise ValueError(f"unknown read-out {kind!r}; choose cls, patch_mean, all_tokens or per_channel")

    def reorder(self, index: torch.Tensor) -> EncoderOutput:
        """The outputs of images ``index`` in that order."""
        idx = index.tolist()
        return EncoderOutput(
            cls=self.cls[index.to(self.cls.device)],
            patch_tokens=[self.patch_tokens[i] for i in idx],
            attentions=[self.attentions[i] for i in idx] if self.attentions is not None else None,
            channel_names=tuple(self.channel_names[i] for i in idx) if self.channel_names is not None else None,
        )
