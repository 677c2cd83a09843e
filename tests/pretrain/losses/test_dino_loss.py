"""DINOLoss against a loop-by-loop numpy computation of the DINO objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.losses import DINOLoss


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference(student, teacher, center, n_global, n_crops, t_temp, s_temp=0.1):
    """Explicit loops over view pairs and images, straight from the DINO paper (Eq. 3)."""
    batch = teacher.shape[0] // n_global
    total, pairs = 0.0, 0
    for i in range(n_global):
        for j in range(n_crops):
            if i == j:
                continue
            pair = 0.0
            for b in range(batch):
                q = _softmax((teacher[i * batch + b] - center[0]) / t_temp)
                log_p = np.log(_softmax(student[j * batch + b] / s_temp))
                pair += -(q * log_p).sum()
            total += pair / batch
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("n_global,n_local", [(2, 3), (2, 0), (1, 2)])
def test_matches_explicit_loops(n_global, n_local):
    rng = np.random.default_rng(0)
    batch, k = 3, 5
    student = rng.normal(size=((n_global + n_local) * batch, k))
    teacher = rng.normal(size=(n_global * batch, k))
    loss_fn = DINOLoss(k, n_global=n_global, n_local=n_local)
    center = rng.normal(size=(1, k)) * 0.1
    loss_fn.center.copy_(torch.tensor(center))
    got = loss_fn(torch.tensor(student), torch.tensor(teacher), teacher_temp=0.04)
    want = _reference(student, teacher, center, n_global, n_global + n_local, 0.04)
    assert got.ndim == 0 and got.dtype == torch.float32
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_center_ema_update_value():
    loss_fn = DINOLoss(4, n_global=2, n_local=0, center_momentum=0.9)
    loss_fn.center.fill_(1.0)
    teacher = torch.arange(16.0).view(4, 4)  # column means: 6, 7, 8, 9
    loss_fn(torch.randn(4, 4), teacher, 0.07)
    expected = 0.9 * 1.0 + 0.1 * torch.tensor([[6.0, 7.0, 8.0, 9.0]])
    torch.testing.assert_close(loss_fn.center, expected)


def test_center_is_checkpointed_and_loss_uses_old_center():
    loss_fn = DINOLoss(6, n_global=2, n_local=1, center_momentum=0.5)
    s, t = torch.randn(9, 6), torch.randn(6, 6) * 3
    first = loss_fn(s, t, 1.0)  # computed with the initial zero centre
    assert "center" in loss_fn.state_dict()
    restored = DINOLoss(6, n_global=2, n_local=1, center_momentum=0.5)
    restored.load_state_dict(loss_fn.state_dict())
    torch.testing.assert_close(restored.center, 0.5 * t.mean(0, keepdim=True))
    second = restored(s, t, 1.0)
    torch.testing.assert_close(second, loss_fn(s, t, 1.0))
    assert (first - second).abs() > 1e-3  # the moved centre changes the teacher targets


def test_gradient_flows_only_into_student():
    loss_fn = DINOLoss(8, n_global=2, n_local=2)
    s = torch.randn(8, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    loss_fn(s, t, 0.04).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_bf16_inputs_computed_in_float32():
    loss_fn = DINOLoss(8, n_global=2, n_local=1)
    s, t = torch.randn(6, 8), torch.randn(4, 8)
    ref = DINOLoss(8, n_global=2, n_local=1)(s.bfloat16().float(), t.bfloat16().float(), 0.04)
    got = loss_fn(s.bfloat16(), t.bfloat16(), 0.04)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref)


def test_single_process_gloo_all_reduce_keeps_the_mean(tmp_path):
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        loss_fn = DINOLoss(4, n_global=2, n_local=0, center_momentum=0.5)
        teacher = torch.arange(8.0).view(2, 4)
        loss_fn(torch.randn(2, 4), teacher, 0.04)
        torch.testing.assert_close(loss_fn.center, 0.5 * teacher.mean(0, keepdim=True))
    finally:
        dist.destroy_process_group()


def test_shape_errors_name_the_fix():
    loss_fn = DINOLoss(4, n_global=2, n_local=10)
    with pytest.raises(ValueError, match="n_local"):
        loss_fn(torch.randn(6, 4), torch.randn(4, 4), 0.04)  # 3 crops given, 12 expected
    with pytest.raises(ValueError, match="out_dim"):
        loss_fn(torch.randn(24, 5), torch.randn(4, 5), 0.04)
    with pytest.raises(ValueError, match="two crops"):
        DINOLoss(4, n_global=1, n_local=0)
    with pytest.raises(ValueError, match="teacher_temp"):
        loss_fn(torch.randn(24, 4), torch.randn(4, 4), 0.0)
