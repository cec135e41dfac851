"""Collapse signals on closed-form cases, and the collapse decision."""

from __future__ import annotations

import math

import pytest
import torch

from chadavit.pretrain.collapse import CollapseDetector
from chadavit.pretrain.monitor import collapse_metrics, embedding_stats, kl_teacher_student, teacher_stats


def test_uniform_teacher_has_entropy_ratio_one():
    k = 64
    s = teacher_stats(torch.zeros(6, k), torch.zeros(1, k), 0.04)
    assert s["teacher_entropy"] == pytest.approx(math.log(k), rel=1e-6)
    assert s["entropy_ratio"] == pytest.approx(1.0, rel=1e-6)


def test_one_hot_teacher_has_entropy_near_zero():
    t = torch.full((4, 32), -100.0)
    t[:, 3] = 100.0
    s = teacher_stats(t, torch.zeros(1, 32), 0.1)
    assert s["teacher_entropy"] < 1e-6 and s["entropy_ratio"] < 1e-6


def test_centring_is_applied_like_the_loss():
    t = torch.randn(4, 16)
    # centring on the outputs themselves (identical rows) makes the teacher uniform
    s = teacher_stats(t[:1].repeat(4, 1), t[:1], 0.04)
    assert s["entropy_ratio"] == pytest.approx(1.0, rel=1e-6)


def test_kl_zero_when_student_matches_teacher_and_positive_otherwise():
    k, b = 10, 3
    logits = torch.randn(b, k)
    teacher = torch.cat([logits, logits])  # two global views with the same content
    # student temperature 0.1 and teacher temperature 0.1 on the same logits: identical distributions
    student = torch.cat([logits, logits, logits])  # 2 global + 1 local view
    assert kl_teacher_student(student, teacher, torch.zeros(1, k), 0.1, 0.1) == pytest.approx(0.0, abs=1e-6)
    other = torch.cat([logits, logits, torch.randn(b, k) * 5])
    assert kl_teacher_student(other, teacher, torch.zeros(1, k), 0.1, 0.1) > 0.1


def test_identical_embeddings_cosine_one_std_zero():
    e = torch.randn(1, 32).repeat(8, 1)
    s = embedding_stats(e * torch.arange(1, 9).float()[:, None])  # scale does not matter: normalised
    assert s["emb_mean_cos"] == pytest.approx(1.0, abs=1e-5)
    assert s["emb_std"] == pytest.approx(0.0, abs=1e-5)
    assert s["emb_std_ratio"] == pytest.approx(0.0, abs=1e-4)


def test_orthogonal_embeddings_cosine_zero_and_isotropic_spread():
    d = 16
    s = embedding_stats(torch.cat([torch.eye(d), -torch.eye(d)]))
    assert s["emb_mean_cos"] == pytest.approx(-1 / (2 * d - 1), abs=1e-6)  # only x and -x pairs are non-zero
    assert s["emb_std"] == pytest.approx(1 / math.sqrt(d), rel=1e-5)
    assert s["emb_std_ratio"] == pytest.approx(1.0, rel=1e-5)


def test_collapse_metrics_are_plain_floats():
    m = collapse_metrics(torch.randn(12, 8), torch.randn(8, 8), torch.randn(8, 5), torch.zeros(1, 8), 0.04, 0.1)
    assert set(m) == {"teacher_entropy", "entropy_ratio", "kl_teacher_student", "emb_mean_cos", "emb_std",
                      "emb_std_ratio"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())


def test_detector_warns_once_after_patience():
    det = CollapseDetector(out_dim=1024, patience=3)
    ln_k = math.log(1024)
    healthy = {"loss": ln_k * 0.8, "emb_std_ratio": 0.3, "emb_std": 0.01, "emb_mean_cos": 0.5}
    flat = {**healthy, "loss": ln_k * 1.001}
    msgs = [det.update({**r, "step": i}) for i, r in enumerate([flat, flat, healthy, flat, flat, flat, flat, flat])]
    assert [m is not None for m in msgs] == [False, False, False, False, False, True, False, False]
    assert "COLLAPSED since step 3" in msgs[5] and "teacher_temp" in msgs[5] and "out_dim" in msgs[5]
    assert det.collapsed and "ln(out_dim)" in det.reason


def test_detector_catches_identical_embeddings():
    det = CollapseDetector(out_dim=128, patience=2)
    rec = {"loss": 1.0, "emb_std_ratio": 0.001, "emb_std": 1e-4, "emb_mean_cos": 0.9999}
    assert det.update({**rec, "step": 1}) is None
    assert "barely differ" in det.update({**rec, "step": 2})


def test_detector_does_not_judge_the_warm_up():
    det = CollapseDetector(out_dim=64, patience=2, judge_from_step=10)
    flat = {"loss": math.log(64), "emb_std_ratio": 0.5, "emb_std": 0.1, "emb_mean_cos": 0.1}
    assert all(det.update({**flat, "step": s}) is None for s in (1, 5, 10))
    assert det.update({**flat, "step": 11}) is None and det.update({**flat, "step": 12}) is not None
