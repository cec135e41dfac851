"""The training loop: learning, logs and outputs, exact kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from chadavit.models import load_pretrained
from chadavit.pretrain.checkpoint import load_checkpoint
from chadavit.pretrain.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from tiny import TINY, tiny_config  # noqa: E402


def _losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_loss_decreases_and_outputs_written(tmp_path):
    # a frozen teacher (momentum 1) and frozen centre give the student a fixed target: the loss must fall
    out = tmp_path / "run"
    s = train(tiny_config(out, "dino.momentum_teacher=1.0", "dino.center_momentum=1.0", "train.epochs=3",
                          "optim.warmup_epochs=0"))
    losses = _losses(out)
    assert len(losses) == s["steps"] == 18
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.05, losses
    for name in ("checkpoint.pt", "metrics.jsonl", "loss_curve.png", "config.yaml", "summary.json"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    model = load_pretrained(out / "backbone")
    teacher_backbone = {k[len("backbone."):]: v for k, v in s["_teacher"].state_dict().items()
                        if k.startswith("backbone.")}
    for k, v in model.state_dict().items():
        assert torch.equal(v, teacher_backbone[k]), k
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["step"] == 18 and set(ck) >= {"student", "teacher", "optimizer", "center", "config"}


def _state(out: Path) -> dict[str, torch.Tensor]:
    ck = load_checkpoint(out / "checkpoint.pt")
    return {**{f"s.{k}": v for k, v in ck["student"].items()}, **{f"t.{k}": v for k, v in ck["teacher"].items()},
            "center": ck["center"]}


def test_stop_and_resume_equals_uninterrupted(tmp_path):
    full = tmp_path / "full"
    train(tiny_config(full, "train.epochs=2"))
    part = tmp_path / "part"
    s1 = train(tiny_config(part, "train.epochs=2", "train.max_steps=7"))  # stops mid-epoch 2
    assert s1["steps"] == 7
    s2 = train(tiny_config(part, "train.epochs=2"))
    assert s2["steps"] == 12
    a, b = _state(full), _state(part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 12


def test_kill_at_any_instant_then_resume(tmp_path):
    """SIGKILL a training process mid-run; the last checkpoint loads and resuming ends at the same weights."""
    full = tmp_path / "full"
    train(tiny_config(full, "train.epochs=3"))
    killed = tmp_path / "killed"
    code = ("import sys; sys.path.insert(0, %r); from tiny import tiny_config; "
            "from chadavit.pretrain.trainer import train; "
            "train(tiny_config(%r, 'train.epochs=3', 'train.checkpoint_every=1'))") % (str(Path(__file__).parent),
                                                                                      str(killed))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        ck = killed / "checkpoint.pt"
        if ck.exists() and (killed / "metrics.jsonl").exists() and \
                len((killed / "metrics.jsonl").read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load_checkpoint(killed / "checkpoint.pt")["step"]  # readable whatever the instant
    assert 0 < step < 18
    train(tiny_config(killed, "train.epochs=3"))
    a, b = _state(full), _state(killed)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_a_different_model(tmp_path):
    import pytest

    from chadavit.pretrain.checkpoint import ResumeError

    out = tmp_path / "r"
    train(tiny_config(out, "train.epochs=1", "train.max_steps=2"))
    with pytest.raises(ResumeError, match="model"):
        train(tiny_config(out, "train.epochs=1", "model.overrides.depth=1"))
    assert TINY  # the shared tiny settings are importable by subprocesses too
