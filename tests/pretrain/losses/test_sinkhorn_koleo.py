"""Sinkhorn-Knopp targets and the KoLeo term against hand values and a numpy restatement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pretrain.losses import DINOLoss
from pretrain.losses.ibot import iBOTLoss, iBOTPatchLoss
from pretrain.losses.koleo import koleo_loss
from pretrain.losses.sinkhorn import sinkhorn_knopp
from pretrain.objective import KoLeoObjective, build_objective


def numpy_sinkhorn(logits: np.ndarray, temp: float, n_iters: int = 3) -> np.ndarray:
    """DINOv2's sinkhorn_knopp_teacher restated in numpy (one process, float64)."""
    q = np.exp(logits / temp).T  # K x B
    k, b = q.shape
    q /= q.sum()
    for _ in range(n_iters):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    return (q * b).T


def test_sinkhorn_equals_numpy_restatement():
    logits = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    ours = sinkhorn_knopp(logits, 0.1)
    ref = numpy_sinkhorn(logits.double().numpy(), 0.1)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.sum(1).numpy(), np.ones(12), atol=1e-6)  # rows are distributions


def test_sinkhorn_equipartitions_prototypes():
    # every row prefers prototype 0; after many iterations each prototype takes 1/K of the mass
    logits = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 8) + 0.01 * torch.arange(32.0).view(8, 4)
    q = sinkhorn_knopp(logits, 0.5, n_iters=200)
    np.testing.assert_allclose(q.sum(0).numpy(), np.full(4, 2.0), atol=1e-4)  # 8 rows / 4 prototypes
    np.testing.assert_allclose(q.sum(1).numpy(), np.ones(8), atol=1e-6)


def test_sinkhorn_row_weights_skip_rows_and_survive_low_temperature():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    w = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    q = sinkhorn_knopp(logits, 0.2, row_weights=w)
    assert torch.equal(q[~w], torch.zeros(2, 4))
    torch.testing.assert_close(q[w], sinkhorn_knopp(logits[w], 0.2))  # same as on the kept rows alone
    q_cold = sinkhorn_knopp(logits * 100, 0.001)  # exp(1e5) would overflow without the max shift
    assert torch.isfinite(q_cold).all()
    assert torch.equal(sinkhorn_knopp(logits, 0.2, row_weights=torch.zeros(6)), torch.zeros(6, 4))


def test_koleo_hand_values():
    # three unit vectors: each one's nearest neighbour is sqrt(2) away -> loss = -log(sqrt 2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert koleo_loss(x).item() == pytest.approx(-math.log(math.sqrt(2)), abs=1e-6)
    # scale does not matter (rows are normalised); a closer pair raises the loss
    assert koleo_loss(5 * x).item() == pytest.approx(-math.log(math.sqrt(2)), abs=1e-6)
    y = torch.tensor([[1.0, 0.0], [math.cos(0.1), math.sin(0.1)], [-1.0, 0.0]])
    d01 = 2 * math.sin(0.05)  # chord of 0.1 rad
    d2 = 2 * math.sin((math.pi - 0.1) / 2)
    expected = -(2 * math.log(d01) + math.log(d2)) / 3
    assert koleo_loss(y).item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="B >= 2"):
        koleo_loss(torch.randn(1, 4))


def test_dino_sinkhorn_loss_is_cross_entropy_with_sinkhorn_targets():
    g, b, k = 2, 4, 6
    gen = torch.Generator().manual_seed(2)
    t, s = torch.randn(g * b, k, generator=gen), torch.randn((g + 1) * b, k, generator=gen)
    loss = DINOLoss(k, n_global=g, n_local=1, centering="sinkhorn")(s, t, 0.05)
    q = numpy_sinkhorn(t.double().numpy(), 0.05).reshape(g, b, k)
    log_p = torch.log_softmax(s.double() / 0.1, -1).numpy().reshape(g + 1, b, k)
    pairs = [-(q[i] * log_p[j]).sum(-1).mean() for i in range(g) for j in range(g + 1) if i != j]
    assert loss.item() == pytest.approx(float(np.mean(pairs)), rel=1e-5)
    with pytest.raises(ValueError, match="centering"):
        DINOLoss(k, centering="sinkhron")


def test_patch_sinkhorn_same_value_for_every_student_selection():
    gen = torch.Generator().manual_seed(3)
    t, s = torch.randn(4, 9, 5, generator=gen), torch.randn(4, 9, 5, generator=gen)
    masks = torch.rand(4, 9, generator=gen) < 0.4
    masks[1] = False  # an unmasked image still counts in the mean
    loss = iBOTPatchLoss(5, centering="sinkhorn")
    full = loss(s, t, masks, 0.05)
    flat = loss(s[masks], t, masks, 0.05, index=masks)
    idx = torch.sort(torch.sort(masks.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :6], dim=1).values
    gathered = loss(torch.gather(s, 1, idx.unsqueeze(-1).expand(-1, -1, 5)), t, masks, 0.05, index=idx)
    torch.testing.assert_close(flat, full)
    torch.testing.assert_close(gathered, full)
    # by hand: Sinkhorn over the masked tokens only, cross-entropy averaged per image over its masked count
    q = numpy_sinkhorn(t[masks].double().numpy(), 0.05)
    ce = -(q * torch.log_softmax(s[masks].double() / 0.1, -1).numpy()).sum(-1)
    owner = masks.nonzero()[:, 0].numpy()
    per_image = [ce[owner == i].sum() / max(1, (owner == i).sum()) for i in range(4)]
    assert full.item() == pytest.approx(float(np.mean(per_image)), rel=1e-5)


def test_koleo_objective_adds_weighted_term_and_keeps_keys():
    gen = torch.Generator().manual_seed(4)
    base = build_objective("ibot", 6, 6, 2, 1, 0.1, 0.9, 1.0, 1.0)
    wrapped = build_objective("ibot", 6, 6, 2, 1, 0.1, 0.9, 1.0, 1.0, koleo_weight=0.1)
    assert isinstance(wrapped, KoLeoObjective) and isinstance(base, iBOTLoss)
    assert set(wrapped.state_dict()) == set(base.state_dict()) == {"cls.center", "patch.center"}
    s, t = torch.randn(12, 6, generator=gen), torch.randn(8, 6, generator=gen)
    sp, tp = torch.randn(8, 3, 6, generator=gen), torch.randn(8, 3, 6, generator=gen)
    masks = torch.rand(8, 3, generator=gen) < 0.5
    pooled = torch.randn(8, 16, generator=gen)
    plain = base(s, t, sp, tp, masks, 0.04)
    terms = wrapped(s, t, sp, tp, masks, 0.04, student_pooled=pooled)
    koleo = koleo_loss(pooled[:4]) + koleo_loss(pooled[4:])
    torch.testing.assert_close(terms.koleo, koleo)
    torch.testing.assert_close(terms.total, plain.total + 0.1 * koleo)
    wrapped.load_state_dict(base.state_dict())  # checkpoints of either load into the other
