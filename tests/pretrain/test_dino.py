"""DINO pieces against closed-form expectations: head, loss, centre, schedules, parameter groups."""

from __future__ import annotations

import math

import numpy as np
import torch

from chadavit.pretrain.head import DINOHead
from chadavit.pretrain.loss import DINOLoss
from chadavit.pretrain.schedules import cosine_schedule, teacher_temp_schedule


def test_head_shapes_weight_norm_and_frozen_norm():
    head = DINOHead(16, out_dim=50, hidden_dim=32, bottleneck_dim=8, norm_last_layer=True)
    y = head(torch.randn(4, 16))
    assert y.shape == (4, 50)
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    # rows of the effective weight have unit norm, so logits are bounded by the (unit) bottleneck norm
    assert torch.allclose(head.last_layer.weight.norm(dim=1), torch.ones(50), atol=1e-5)
    assert float(y.detach().abs().max()) <= 1 + 1e-5
    assert DINOHead(16, 50, 32, 8, norm_last_layer=False).last_layer.parametrizations.weight.original0.requires_grad


def test_loss_closed_form_and_pairs():
    torch.manual_seed(0)
    k, b = 6, 3
    t = torch.randn(2 * b, k)
    s = torch.randn(4 * b, k)  # 2 global + 2 local views
    loss_fn = DINOLoss(k, student_temp=0.1, center_momentum=0.9)
    loss = loss_fn(s, t, teacher_temp=0.04)
    tp = torch.softmax(t / 0.04, -1).chunk(2)
    sp = torch.log_softmax(s / 0.1, -1).chunk(4)
    pairs = [(i, j) for i in range(2) for j in range(4) if i != j]
    ref = sum((-tp[i] * sp[j]).sum(-1).mean() for i, j in pairs) / len(pairs)
    assert torch.allclose(loss, ref, atol=1e-5)
    assert torch.allclose(loss_fn.center, 0.1 * t.mean(0, keepdim=True), atol=1e-6)


def test_loss_is_minimal_when_student_matches_teacher():
    k = 5
    t = torch.tensor([[5.0, 0, 0, 0, 0]] * 2)
    fn = DINOLoss(k, student_temp=1.0, center_momentum=1.0)
    good = fn(t * 0.04, t, teacher_temp=1.0)
    bad = fn(-t, t, teacher_temp=1.0)
    assert good < bad


def test_schedules():
    s = cosine_schedule(1.0, 0.0, 100, warmup_steps=10)
    assert len(s) == 100 and s[0] == 0 and math.isclose(s[10], 1.0) and s[-1] < 0.01
    assert np.all(np.diff(s[10:]) <= 1e-12) and np.all(np.diff(s[:11]) > 0)
    m = cosine_schedule(0.996, 1.0, 50)
    assert math.isclose(m[0], 0.996) and m[-1] > 0.9999
    tt = teacher_temp_schedule(0.04, 0.07, 5, 20)
    assert math.isclose(tt[0], 0.04) and math.isclose(tt[4], 0.07) and np.all(tt[5:] == 0.07)


def test_param_groups_no_decay_on_bias_norm_1d():
    from chadavit.models import create_model
    from chadavit.pretrain.trainer import DinoNet, param_groups

    net = DinoNet(create_model("chada_vit_nano", depth=1), DINOHead(64, 32, 32, 16))
    decay, no_decay = param_groups(net)
    names = {id(p): n for n, p in net.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"])
    nd = {names[id(p)] for p in no_decay["params"]}
    assert any(n.endswith(".bias") for n in nd) and "backbone.cls_token" in nd and "backbone.pos_embed" in nd
    assert decay["apply_wd"] is not False and no_decay["weight_decay"] == 0.0
