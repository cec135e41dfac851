"""Two-process DDP on CPU (gloo): identical parameters and DINO centre on every rank after several steps."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, here: str) -> None:
    sys.path.insert(0, here)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    from tiny import tiny_config

    from chadavit.pretrain import distributed as D
    from chadavit.pretrain.trainer import train

    s = train(tiny_config(Path(out) / "run", "train.epochs=2", "data.batch_size=4"))
    torch.save({"student": s["_student"].state_dict(), "teacher": s["_teacher"].state_dict(), "steps": s["steps"]},
               Path(out) / f"rank{rank}.pt")
    D.cleanup()


@pytest.mark.dist
def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(Path(__file__).parent)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # 48 images, 4 per rank x 2 ranks -> 6 steps per epoch on both ranks
    assert r0["steps"] == r1["steps"] == 12
    for part in ("student", "teacher"):
        for k, v in r0[part].items():
            assert torch.equal(v, r1[part][k]), (part, k)
    init = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert init["world_size"] == 2 and init["step"] == 12
