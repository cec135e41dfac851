"""``chadavit embed merge SHARD.parquet ... --out OUT`` and the torchrun path of ``chadavit embed``.

Kept apart from ``cli/embed.py`` so that the embed arguments stay in one short file; ``embed``
hands over here when its first INPUT is ``merge`` or when torchrun started it.
"""

from __future__ import annotations

import argparse
import sys

from chadavit.embed.distributed import ProcessGroup
from chadavit.embed.output import EmbedError
from chadavit.embed.runner import EmbedConfig

# options of ``embed`` that mean nothing to ``merge``: given anyway, they are refused rather than ignored
EMBED_ONLY = ("model", "shard", "pattern", "channels", "channel_map", "limit")


def run_merge(args: argparse.Namespace) -> int:
    from chadavit.embed.merge import MergeError, merge_shards

    given = [f"--{k.replace('_', '-')}" for k in EMBED_ONLY if getattr(args, k, None)]
    if given:
        raise MergeError(f"chadavit embed merge: {', '.join(given)} do(es) not apply to merge (the shards record "
                         "their settings); give only shard files, --out, --overwrite and --h5ad")
    res = merge_shards(args.input[1:], args.out, overwrite=args.overwrite)
    print(f"merged {res.n_shards} shards: {res.n_rows} rows of {res.n_images} images into {res.out} "
          f"in {res.seconds:.1f} s")
    if args.h5ad:
        from chadavit.embed.output import write_h5ad

        print(f"wrote {write_h5ad(res.out, args.h5ad)}")
    if res.errors_path is not None:
        print(f"{res.n_failed} failed image(s) and {res.n_warnings} warning(s) of the shards in {res.errors_path}")
    return 1 if res.n_failed else 0


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
