"""iBOTPatchLoss and iBOTLoss against explicit per-token numpy loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.losses import DINOLoss, iBOTLoss, iBOTPatchLoss


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference(student, teacher, masks, center, t_temp, s_temp=0.1):
    """Per image: sum of token CEs over its masked tokens / max(count, 1); mean over images."""
    per_image = []
    for m in range(student.shape[0]):
        total, count = 0.0, 0
        for n in range(student.shape[1]):
            if masks[m, n]:
                q = _softmax((teacher[m, n] - center[0, 0]) / t_temp)
                total += -(q * np.log(_softmax(student[m, n] / s_temp))).sum()
                count += 1
        per_image.append(total / max(count, 1))
    return float(np.mean(per_image))


def test_matches_explicit_loops_with_variable_and_zero_masks():
    rng = np.random.default_rng(1)
    images, tokens, k = 4, 6, 5
    student = rng.normal(size=(images, tokens, k))
    teacher = rng.normal(size=(images, tokens, k))
    masks = np.zeros((images, tokens), dtype=bool)
    masks[0, [1, 4]] = True
    masks[1, :] = True
    masks[3, 2] = True  # image 2 has no masked token: contributes 0 but counts in the mean
    center = rng.normal(size=(1, 1, k)) * 0.1
    loss_fn = iBOTPatchLoss(k)
    loss_fn.center.copy_(torch.tensor(center))
    got = loss_fn(torch.tensor(student), torch.tensor(teacher), torch.tensor(masks), 0.05)
    assert got.item() == pytest.approx(_reference(student, teacher, masks, center, 0.05), rel=1e-5)


def test_patch_center_update_over_all_tokens():
    loss_fn = iBOTPatchLoss(3, center_momentum=0.9)
    teacher = torch.arange(24.0).view(2, 4, 3)  # mean over images and tokens: 10.5, 11.5, 12.5
    masks = torch.zeros(2, 4, dtype=torch.bool)
    loss = loss_fn(torch.randn(2, 4, 3), teacher, masks, 0.07)
    assert loss.item() == 0.0  # nothing masked
    torch.testing.assert_close(loss_fn.center, 0.1 * torch.tensor([[[10.5, 11.5, 12.5]]]))


def test_unmasked_tokens_get_no_gradient():
    loss_fn = iBOTPatchLoss(4)
    student = torch.randn(2, 3, 4, requires_grad=True)
    masks = torch.tensor([[True, False, False], [False, False, True]])
    loss_fn(student, torch.randn(2, 3, 4), masks, 0.04).backward()
    grad_norm = student.grad.abs().sum(-1)
    assert torch.equal(grad_norm > 0, masks)


def test_ibot_loss_combines_terms_with_separate_centers():
    torch.manual_seed(3)
    g, b, n, k, kp = 2, 3, 4, 6, 5
    loss_fn = iBOTLoss(k, kp, n_global=g, n_local=1, lambda_cls=1.0, lambda_patch=0.5)
    s_cls, t_cls = torch.randn((g + 1) * b, k), torch.randn(g * b, k)
    s_p, t_p = torch.randn(g * b, n, kp), torch.randn(g * b, n, kp)
    masks = torch.rand(g * b, n) < 0.5
    terms = loss_fn(s_cls, t_cls, s_p, t_p, masks, teacher_temp=0.04, teacher_patch_temp=0.06)
    cls_ref = DINOLoss(k, n_global=g, n_local=1)(s_cls, t_cls, 0.04)
    patch_ref = iBOTPatchLoss(kp)(s_p, t_p, masks, 0.06)
    torch.testing.assert_close(terms.cls, cls_ref)
    torch.testing.assert_close(terms.patch, patch_ref)
    torch.testing.assert_close(terms.total, cls_ref + 0.5 * patch_ref)
    assert set(loss_fn.state_dict()) == {"cls.center", "patch.center"}
    assert loss_fn.state_dict()["patch.center"].shape == (1, 1, kp)


def test_mask_shape_and_dtype_errors():
    loss_fn = iBOTPatchLoss(4)
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="bool"):
        loss_fn(x, x, torch.ones(2, 3), 0.04)
    with pytest.raises(ValueError, match="shape"):
        loss_fn(x, x, torch.ones(2, 4, dtype=torch.bool), 0.04)


def test_student_outputs_at_an_index_give_the_same_loss_gradient_and_centre():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 9, 7), torch.randn(5, 9, 7)
    masks = torch.rand(5, 9) < 0.3
    masks[2] = False  # an unmasked image still counts in the mean
    index = torch.sort(masks.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :4]
    assert bool((torch.gather(masks, 1, index).sum(1) == masks.sum(1)).all())  # every masked token kept
    full, picked = iBOTPatchLoss(7), iBOTPatchLoss(7)
    for loss in (full, picked):
        loss.center.normal_(generator=torch.Generator().manual_seed(1))
    s_full = student.clone().requires_grad_()
    ref = full(s_full, teacher, masks, 0.05)
    ref.backward()
    s_kept = torch.gather(student, 1, index[..., None].expand(-1, -1, 7)).requires_grad_()
    got = picked(s_kept, teacher, masks, 0.05, index=index)
    got.backward()
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(s_kept.grad, torch.gather(s_full.grad, 1, index[..., None].expand(-1, -1, 7)))
    torch.testing.assert_close(picked.center, full.center)  # the centre follows all teacher tokens
    with pytest.raises(ValueError, match="index"):
        picked(s_kept, teacher, masks, 0.05, index=index[:, :3])


def test_flat_student_outputs_of_the_masked_tokens_give_the_same_loss_and_gradient():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 9, 7), torch.randn(5, 9, 7)
    masks = torch.rand(5, 9) < 0.3
    masks[2] = False
    full, flat = iBOTPatchLoss(7), iBOTPatchLoss(7)
    s_full = student.clone().requires_grad_()
    ref = full(s_full, teacher, masks, 0.05)
    ref.backward()
    s_flat = student[masks].clone().requires_grad_()  # (S, K), row-major
    got = flat(s_flat, teacher, masks, 0.05, index=masks)
    got.backward()
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(s_flat.grad, s_full.grad[masks])
    torch.testing.assert_close(flat.center, full.center)
    with pytest.raises(ValueError, match="bool index"):
        flat(s_flat, teacher, masks, 0.05, index=masks[:, :4])
