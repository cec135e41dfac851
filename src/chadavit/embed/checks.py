"""Checks of the channel options against the whole listing, before any pixel is read."""

from __future__ import annotations

import logging

from chadavit.embed.channels import ChannelSpec
from chadavit.embed.config import EmbedConfig
from chadavit.embed.output import EmbedError
from chadavit.embed.sources import ImageRecord

log = logging.getLogger("chadavit.embed")


def check_channel_options(cfg: EmbedConfig, spec: ChannelSpec, records: list[ImageRecord]) -> None:
    """Catch typos before any pixel is read, when the inputs name their channels up front."""
    if not records or any(r.channel_names is None for r in records):
        return
    source = {n for r in records for n in r.channel_names or ()}
    unused = sorted(set(spec.channel_map) - source)
    if unused:
        log.warning("--channel-map names %s, which no image has (channels found: %s)", unused,
                    ", ".join(sorted(source)))
    if spec.wanted:
        mapped = {spec.channel_map.get(n, n) for n in source}
        missing = [w for w in spec.wanted if w not in mapped]
        if missing:
            have = ", ".join(f"{n}->{spec.channel_map[n]}" if n in spec.channel_map else n for n in sorted(source))
            raise EmbedError(f"--channels asks for {missing}, which no image has; channels found: {have}. "
                             "Rename file channel names with --channel-map SOURCE=NAME")
    if cfg.crops == "nuclei":
        check_nuclei_option(cfg, spec, source, records)


def check_nuclei_option(cfg: EmbedConfig, spec: ChannelSpec, source: set[str], records: list[ImageRecord]) -> None:
    """``--crops nuclei`` must know where the nuclei are before every image fails on it."""
    from chadavit.data.crops import NUCLEUS_CHANNEL_GUESSES

    mapped = {spec.channel_map.get(n, n) for n in source}
    want = cfg.nuclei_channel
    if want is not None:
        if want not in mapped | source:
            raise EmbedError(f"--nuclei-channel {want!r} is not a channel of any image; channels found: "
                             f"{', '.join(sorted(mapped))}")
        return
    guesses = {g.lower() for g in NUCLEUS_CHANNEL_GUESSES}

    def found(r: ImageRecord) -> bool:
        names = list(spec.wanted) if spec.wanted else [spec.channel_map.get(n, n) for n in r.channel_names or ()]
        return len(names) <= 1 or any(n.lower() in guesses for n in names)

    if not any(found(r) for r in records):
        raise EmbedError(f"--crops nuclei needs --nuclei-channel: none of the channels {sorted(mapped)} is a "
                         f"known DNA stain ({', '.join(NUCLEUS_CHANNEL_GUESSES)})")
