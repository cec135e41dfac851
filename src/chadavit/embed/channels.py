"""Mapping the channel names of users' files onto the names a model knows.

Files name their channels however the microscope or the lab did (``d0``, ``w2``, ``Channel 1``,
``ch0`` for unnamed planes). ``--channel-map d0=DNA,d1=PH3`` renames them; ``--channels DNA,PH3``
picks which channels are embedded and in which order. ChAda-ViT's official channel token is
indexed by *position*, so the order is part of the input; models with identity channel embeddings
look the names up in their vocabulary instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from chadavit.errors import ChadavitError

ANONYMOUS = re.compile(r"^ch\d+$")


class ChannelError(ChadavitError, ValueError):
    """An image lacks a requested channel, or a channel option is malformed."""


def parse_channel_list(text: str | None) -> list[str] | None:
    """``"DNA,Actin"`` -> ``["DNA", "Actin"]`` (``None`` or empty -> ``None``)."""
    if not text:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ChannelError(f"--channels lists {dup} more than once")
    return names or None


def parse_channel_map(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"d0=DNA,d1=PH3"`` -> ``{"d0": "DNA", "d1": "PH3"}``."""
    if not text:
        return {}
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ChannelError(f"--channel-map entry {item!r} is not SOURCE=NAME (e.g. d0=DNA)")
        k, v = (s.strip() for s in item.split("=", 1))
        if not k or not v:
            raise ChannelError(f"--channel-map entry {item!r} is not SOURCE=NAME (e.g. d0=DNA)")
        out[k] = v
    return out


@dataclass(frozen=True)
class ChannelSpec:
    """What the user asked for: renames, then the wanted channels in order (``None`` = all, as stored)."""

    channel_map: Mapping[str, str]
    wanted: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, channels: str | Sequence[str] | None = None, channel_map: str | Mapping[str, str] | None = None
              ) -> ChannelSpec:
        wanted = parse_channel_list(channels) if isinstance(channels, str) or channels is None else list(channels)
        return cls(parse_channel_map(channel_map), tuple(wanted) if wanted else None)

    def select(self, source_names: Sequence[str], image: str = "image") -> tuple[list[int], list[str]]:
        """Indices into ``source_names`` and the (mapped) names of the channels to embed.

        Names are matched after ``channel_map``; when the image's channels are anonymous
        (``ch0``, ``ch1``, ... from files without channel metadata) and their count equals the
        number of wanted channels, the wanted names are assigned by position.
        """
        mapped = [self.channel_map.get(n, n) for n in source_names]
        if self.wanted is None:
            return list(range(len(mapped))), mapped
        missing = [w for w in self.wanted if w not in mapped]
        if not missing:
            return [mapped.index(w) for w in self.wanted], list(self.wanted)
        if all(ANONYMOUS.match(n) for n in mapped) and len(mapped) == len(self.wanted):
            return list(range(len(mapped))), list(self.wanted)
        have = ", ".join(f"{s}->{m}" if s != m else s for s, m in zip(source_names, mapped))
        hint = "" if self.channel_map else " (rename file channel names with --channel-map SOURCE=NAME)"
        raise ChannelError(f"{image}: missing channel(s) {missing}; it has [{have}]{hint}")


def vocabulary_of(model_config: object) -> set[str] | None:
    """The channel names an identity-embedding model knows, or ``None`` for slot (positional) models."""
    from chadavit.models.config import channel_vocabulary

    return channel_vocabulary(model_config)


class VocabularyChecker:
    """Warns once per unknown channel name (identity-embedding models use a learned fallback for them)."""

    def __init__(self, model_config: object, strict: bool = False) -> None:
        self.vocab = vocabulary_of(model_config)
        self.strict = strict
        self.unknown: set[str] = set()

    def message(self, names: Iterable[str]) -> str:
        known = ", ".join(sorted(self.vocab or ())[:40])
        fallback = "they use the learned fallback embedding"
        return (f"channel name(s) {sorted(names)} are not in the model's channel vocabulary; "
                f"{'they are refused (--strict-channels)' if self.strict else fallback}."
                f" Known names: {known}. Rename with --channel-map SOURCE=NAME.")

    def check(self, names: Sequence[str]) -> list[str]:
        """New unknown names among ``names`` (raises :class:`ChannelError` in strict mode)."""
        if self.vocab is None:
            return []
        bad = [n for n in names if n not in self.vocab]
        if bad and self.strict:
            raise ChannelError(self.message(bad))
        new = [n for n in bad if n not in self.unknown]
        self.unknown.update(new)
        return new
