"""The DINO method alone: one loss on a tiny batch, the teacher's EMA update, the frozen last layer, its state."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from chadavit.pretrain.data import resolve_paths, synthetic_dir
from chadavit.pretrain.distributed import DistInfo
from chadavit.pretrain.inputs import make_loader, prepare_inputs
from chadavit.pretrain.method import DinoMethod
from chadavit.pretrain.monitor import collapse_metrics

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_config  # noqa: E402

SIGNALS = {"teacher_entropy", "entropy_ratio", "kl_teacher_student", "emb_mean_cos", "emb_std", "emb_std_ratio"}


def _setup(tmp_path: Path, *extra: str, seed: int = 0):
    cfg = tiny_config(tmp_path / "run", f"train.seed={seed}", *extra)
    inputs = prepare_inputs(cfg, resolve_paths(cfg), synthetic_dir(cfg), True, None)
    torch.manual_seed(cfg.train.seed)
    method = DinoMethod(cfg, inputs.backbone, torch.device("cpu"))
    sampler, loader = make_loader(cfg, inputs, DistInfo())
    sampler.set_epoch(0)
    return cfg, method, next(iter(loader))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _setup(tmp_path_factory.mktemp("method"))


def test_one_loss_on_a_tiny_batch(tiny):
    cfg, method, batch = tiny
    center = method.loss_fn.center.clone()
    s_out = method.forward([batch.global_crops, batch.local_crops])
    loss, logs = method.loss(batch, 0.04, signals=True)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    assert set(logs) == {"loss"} | SIGNALS  # no extra objective on: the loss is the DINO term
    assert float(logs["loss"]) == pytest.approx(float(loss.detach()))
    assert 0 < float(loss.detach()) < 2 * math.log(cfg.dino.out_dim)
    # the collapse signals are measured against the centre as it was before this step's loss moved it
    with torch.no_grad():
        t_out, t_cls = method.teacher([batch.global_crops], True)
    expected = collapse_metrics(s_out.detach(), t_out, t_cls, center, 0.04, cfg.dino.student_temp)
    assert logs["teacher_entropy"] == pytest.approx(expected["teacher_entropy"], rel=1e-5)
    assert not torch.equal(method.loss_fn.center, center)  # the loss moved the centre
    method.student.zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.student.parameters())
    _, quiet = method.loss(batch, 0.04)
    assert set(quiet) == {"loss"}


def test_extra_objectives_add_to_the_loss_and_are_logged(tmp_path):
    _, method, batch = _setup(tmp_path, "dino.koleo_weight=0.1", "dino.mask_ratio=0.3")
    torch.manual_seed(1)
    loss, logs = method.loss(batch, 0.04)
    assert set(logs) == {"loss", "loss_koleo", "loss_recon"}
    total = logs["loss"] + logs["loss_koleo"] + logs["loss_recon"]
    assert float(loss.detach()) == pytest.approx(float(total), rel=1e-6)
    assert float(logs["loss_recon"]) > 0


def test_teacher_update_is_an_ema_of_the_trained_student_parameters(tmp_path):
    _, method, _ = _setup(tmp_path)
    with torch.no_grad():
        for p in method.student.parameters():
            p.add_(1.0)
    frozen = method.student.backbone.cls_token
    frozen.requires_grad_(False)  # as train.freeze_blocks leaves it
    before = {n: p.clone() for n, p in method.teacher.named_parameters()}
    student = dict(method.student.named_parameters())
    method.update_teacher(1.0)
    assert all(torch.equal(p, before[n]) for n, p in method.teacher.named_parameters())
    method.update_teacher(0.75)
    for n, p in method.teacher.named_parameters():
        if not student[n].requires_grad:  # frozen in the student (cls_token here, the head's weight-norm scale)
            assert torch.equal(p, before[n]), n  # stays bit-identical
        else:
            assert torch.allclose(p, 0.75 * before[n] + 0.25 * student[n], atol=1e-6), n
    assert not student["backbone.cls_token"].requires_grad
    method.update_teacher(0.0)
    assert torch.equal(method.teacher.head.mlp[0].weight, method.student.head.mlp[0].weight)


def test_last_layer_grads_are_dropped_and_the_rest_kept(tiny):
    _, method, batch = tiny
    method.student.zero_grad(set_to_none=True)
    method.loss(batch, 0.04)[0].backward()
    method.drop_last_layer_grads()
    last = {id(p) for p in method.student.head.last_layer_parameters()}
    assert last and all(p.grad is None for p in method.student.parameters() if id(p) in last)
    assert any(p.grad is not None for p in method.student.parameters() if id(p) not in last)


def test_state_round_trips_into_a_method_built_from_another_seed(tmp_path, tiny):
    _, method, _ = tiny
    _, other, _ = _setup(tmp_path, seed=7)
    assert not torch.equal(other.student.head.mlp[0].weight, method.student.head.mlp[0].weight)
    other.load_state_dict(method.state_dict())
    for a, b in ((other.student, method.student), (other.teacher, method.teacher)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(other.loss_fn.center, method.loss_fn.center)
