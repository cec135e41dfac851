"""Ctrl-C (SIGINT) and SIGTERM (Slurm pre-emption) save a checkpoint at the step reached; resuming is exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from chadavit.pretrain.checkpoint import load_checkpoint
from chadavit.pretrain.failures import TrainingInterrupted
from chadavit.pretrain.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402

RUN = ("train.epochs=2", "train.checkpoint_every=0")  # 12 steps; no periodic checkpoints: only the signal's


def _state(out: Path) -> dict[str, torch.Tensor]:
    ck = load_checkpoint(out / "checkpoint.pt")
    return {**{f"s.{k}": v for k, v in ck["student"].items()}, **{f"t.{k}": v for k, v in ck["teacher"].items()},
            "center": ck["center"]}


def _last_logged_step(out: Path) -> int:
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("sig") / "full"
    train(tiny_config(out, *RUN))
    return _state(out)


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigint_saves_at_the_step_reached_and_resume_is_exact(tmp_path, monkeypatch, uninterrupted):
    from chadavit.pretrain import trainer

    real = trainer.MetricsLog.write

    def write_then_ctrl_c(self, rec):
        real(self, rec)
        if rec["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does, in the middle of the run

    monkeypatch.setattr(trainer.MetricsLog, "write", write_then_ctrl_c)
    out = tmp_path / "int"
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_config(out, *RUN))
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored
    msg = str(info.value)
    assert "stopped by SIGINT at step 5/12" in msg and "run the same command again" in msg
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 5
    monkeypatch.setattr(trainer.MetricsLog, "write", real)
    s = train(tiny_config(out, *RUN))
    assert s["steps"] == 12
    _assert_same(uninterrupted, _state(out))


def test_sigterm_to_the_process_group_with_loader_workers(tmp_path, uninterrupted):
    """Slurm signals every process of the job: main process and loader workers get SIGTERM together."""
    out = tmp_path / "term"
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from tiny import tiny_config\n"
        "from chadavit.pretrain import trainer\n"
        "w = trainer.MetricsLog.write\n"
        "def slow(self, rec):\n"
        "    w(self, rec); time.sleep(0.2)  # time for the test to signal mid-run\n"
        "trainer.MetricsLog.write = slow\n"
        "trainer.train(tiny_config(%r, %s, 'data.num_workers=1'))\n"
    ) % (str(Path(__file__).parent), str(out), ", ".join(repr(x) for x in RUN))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            m = out / "metrics.jsonl"
            if m.exists() and len(m.read_text().splitlines()) >= 3:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # exits on its own: no worker left hanging
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0 and "stopped by SIGTERM at step" in err and "run the same command again" in err, err
    step = load_checkpoint(out / "checkpoint.pt")["step"]
    assert 3 <= step < 12 and step == _last_logged_step(out)
    s = train(tiny_config(out, *RUN))
    assert s["steps"] == 12
    _assert_same(uninterrupted, _state(out))
