"""The parallel paths of ``chadavit embed``: ``--devices`` (one process per device) and a torchrun launch.

Kept apart from ``cli/embed.py`` so that the embed arguments stay in one short file; ``embed`` hands over
here (imported when used: these pull in the embed application and torch).
"""

from __future__ import annotations

import sys

from chadavit.embed.distributed import ProcessGroup
from chadavit.embed.output import EmbedError
from chadavit.embed.runner import EmbedConfig


def run_devices(cfg: EmbedConfig, spec: str) -> int:
    from chadavit.embed.distributed import parse_devices, run_on_devices

    if cfg.shard:
        raise EmbedError("--devices runs one shard per device; drop --shard")
    devices = parse_devices(spec)
    failed = run_on_devices(cfg, devices)
    print(f"embedded on {len(devices)} processes ({', '.join(devices)}) and merged into {cfg.out}")
    if failed:
        print(f"{failed} image(s) failed; see the errors file next to {cfg.out}. Fix them and rerun the same command.",
              file=sys.stderr)
    return 1 if failed else 0


def run_torchrun(cfg: EmbedConfig, group: ProcessGroup) -> int:
    from chadavit.embed.distributed import run_distributed
    from chadavit.signals import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # torchrun forwards SIGTERM: save finished images first
            res = run_distributed(cfg, group)
    except KeyboardInterrupt:
        print(f"chadavit embed: rank {group.rank} interrupted; finished images are saved (rerun the same command "
              "to resume)", file=sys.stderr)
        return 130
    if res.shard is not None:
        s = res.shard
        print(f"rank {res.rank}/{res.world_size}: embedded {s.n_computed} images ({s.n_done_before} from a "
              f"previous run) into {s.out} in {s.seconds:.1f} s ({s.images_per_second:.2f} images/s)")
    failed = res.shard.n_failed if res.shard is not None else 0
    if res.merged is not None:
        m = res.merged
        print(f"merged {m.n_shards} shards: {m.n_rows} rows of {m.n_images} images into {m.out}")
        if m.n_failed:
            print(f"{m.n_failed} image(s) failed; see {m.errors_path}. Fix them and rerun the same command.",
                  file=sys.stderr)
        failed = m.n_failed
    return 1 if failed else 0
