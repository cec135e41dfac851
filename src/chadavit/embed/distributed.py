"""Several processes on one node (``torchrun --nproc-per-node G -m chadavit embed ...``): one shard each, rank 0 merges.

Each process embeds shard ``RANK/WORLD_SIZE`` into ``OUT.shards/`` (resumable like any run), on
``cuda:LOCAL_RANK`` when CUDA is there (``--device auto``/``cuda``), else on the CPU. The processes
only talk to say they are done (one ``all_gather`` over the gloo back-end, which works on CPU and
GPU nodes alike); rank 0 then merges the shards into ``OUT`` with :func:`chadavit.embed.merge.merge_shards`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from chadavit.embed.merge import MergeResult, merge_shards
from chadavit.embed.output import EmbedError
from chadavit.embed.runner import EmbedConfig, EmbedResult, run_embed
from chadavit.embed.shards import shard_out_path

log = logging.getLogger("chadavit.embed")
# a shard can take hours; the processes wait for the slowest one at the end
WAIT_FOR_SHARDS = timedelta(days=7)


@dataclass
class ProcessGroup:
    """Where this process stands among the processes torchrun started."""

    rank: int
    world_size: int
    local_rank: int


def torchrun_group() -> ProcessGroup | None:
    """The torchrun process group from the environment, or ``None`` for a plain single-process run."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return None
    if world <= 1:
        return None
    return ProcessGroup(rank, world, local)


def _device(requested: str, local_rank: int) -> str:
    import torch

    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu" if requested == "auto" else requested


@dataclass
class DistributedResult:
    shard: EmbedResult | None  # None when the shard was already finished by an earlier run
    merged: MergeResult | None  # rank 0 only
    rank: int
    world_size: int


def run_distributed(cfg: EmbedConfig, group: ProcessGroup) -> DistributedResult:
    """Embed this process's shard, wait for every process, and merge on rank 0."""
    import torch.distributed as dist

    if cfg.shard:
        raise EmbedError("--shard is set by torchrun (one shard per process); drop --shard")
    out = Path(cfg.out if cfg.out.endswith(".parquet") else cfg.out + ".parquet")
    if out.exists() and not cfg.overwrite:
        raise EmbedError(f"{out} already exists (a finished run); pass --overwrite to compute it again")
    shard = (group.rank, group.world_size)
    shard_out = shard_out_path(out, shard)
    shard_out.parent.mkdir(parents=True, exist_ok=True)
    scfg = replace(cfg, out=str(shard_out), shard=f"{shard[0]}/{shard[1]}", h5ad=None,
                   device=_device(cfg.device, group.local_rank), progress=cfg.progress and group.rank == 0)
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=WAIT_FOR_SHARDS)
    try:
        status: tuple[str, str] = ("ok", "")
        res = None
        try:
            finished = shard_out.exists() and not shard_out.with_name(shard_out.name + ".parts").exists()
            if finished and not cfg.overwrite:
                log.info("shard %d/%d is already finished in %s", *shard, shard_out)
            else:
                res = run_embed(scfg)
                if res.n_failed:
                    status = ("failed-images", str(res.n_failed))
        except KeyboardInterrupt:
            raise  # interrupted (Ctrl-C, SIGTERM): finished images are saved; torchrun stops the other processes
        except Exception as exc:
            status = ("error", f"{type(exc).__name__}: {exc}")
            dist.all_gather_object([None] * group.world_size, status)
            raise
        statuses: list[tuple[str, str]] = [("", "")] * group.world_size
        dist.all_gather_object(statuses, status)
        broken = [(r, msg) for r, (kind, msg) in enumerate(statuses) if kind == "error"]
        if broken:
            r, msg = broken[0]
            raise EmbedError(f"shard {r}/{group.world_size} stopped ({msg}); rerun the same command to resume")
        merged = None
        merge_status = [""]
        if group.rank == 0:
            try:
                merged = merge_shards([shard_out_path(out, (r, group.world_size)) for r in range(group.world_size)],
                                      out, overwrite=cfg.overwrite)
                if cfg.h5ad:
                    from chadavit.embed.output import write_h5ad

                    write_h5ad(merged.out, cfg.h5ad)
            except BaseException as exc:
                dist.broadcast_object_list([f"{type(exc).__name__}: {exc}"], src=0)
                raise
        dist.broadcast_object_list(merge_status, src=0)
        if merge_status[0]:
            raise EmbedError(f"rank 0 could not merge the shards ({merge_status[0]})")
        return DistributedResult(res, merged, group.rank, group.world_size)
    finally:
        dist.destroy_process_group()


def parse_devices(spec: str) -> list[str]:
    """``"cuda:0,cuda:1"`` -> one device per process; every entry must name a device torch knows."""
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    if len(devices) < 1:
        raise EmbedError(f"--devices {spec!r}: expected a comma-separated list such as cuda:0,cuda:1")
    from chadavit.device import check_device

    for d in devices:
        check_device(d, f"--devices {spec!r}:")
    return devices


def _device_worker(cfg: EmbedConfig, devices: list[str]) -> tuple[str, str, int]:
    """One process of :func:`run_on_devices` (the launcher has set RANK, WORLD_SIZE, LOCAL_RANK)."""
    from chadavit.errors import ChadavitError

    group = torchrun_group()
    assert group is not None
    if devices[group.local_rank] == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        import torch  # CPU processes share the cores instead of each taking all of them

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // len(devices)))
    try:
        res = run_distributed(replace(cfg, device=devices[group.local_rank]), group)
    except ChadavitError as exc:
        return ("error", str(exc), 0)
    failed = res.merged.n_failed if res.merged is not None else (res.shard.n_failed if res.shard else 0)
    return ("ok", "", failed)


def run_on_devices(cfg: EmbedConfig, devices: list[str]) -> int:
    """``--devices a,b,...``: what ``torchrun --nproc-per-node len(devices)`` does, one device per process.

    Returns the number of failed images of the merged table.
    """
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=len(devices), run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    try:
        results = elastic_launch(launch, _device_worker)(cfg, devices)
    except ChildFailedError as exc:
        raise EmbedError(f"--devices: a process failed: {exc}") from exc
    errors = [msg for kind, msg, _ in results.values() if kind == "error"]
    if errors:
        raise EmbedError(errors[0])
    return results[0][2]
