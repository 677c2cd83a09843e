"""EMA teacher update and the multi-crop network wrapper."""

from __future__ import annotations

import pytest
import torch

from pretrain.models import DINOHead, create_model
from pretrain.models.teacher_student import EMATeacher, MultiCropNetwork


def _net(drop_path=0.0):
    backbone = create_model("vit_pico", patch_size=4, img_size=16, drop_path_rate=drop_path,
                            masked_im_modeling=True)
    return MultiCropNetwork(backbone, DINOHead(128, 32, hidden_dim=16, bottleneck_dim=8))


def test_ema_matches_the_formula():
    student, teacher = _net(0.1), _net()
    ema = EMATeacher(student, teacher)
    for (n, s), (_, t) in zip(student.named_parameters(), teacher.named_parameters()):
        assert torch.equal(s, t), f"teacher starts as a copy of the student ({n})"
        assert not t.requires_grad
    before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    ema.update(0.9)
    for n, s in student.named_parameters():
        expected = 0.9 * before[n] + 0.1 * s.detach()
        assert torch.allclose(dict(teacher.named_parameters())[n], expected, atol=1e-6), n
    ema.update(1.0)  # momentum 1 keeps the teacher
    snapshot = [p.clone() for p in teacher.parameters()]
    ema.update(1.0)
    assert all(torch.equal(a, b) for a, b in zip(snapshot, teacher.parameters()))


def test_mismatched_networks_are_refused():
    other = MultiCropNetwork(create_model("vit_pico", patch_size=4, img_size=16),
                             DINOHead(128, 32, hidden_dim=16, bottleneck_dim=8))
    with pytest.raises(ValueError, match="differ in parameters"):
        EMATeacher(_net(), other)


def test_global_and_local_outputs():
    net = _net()
    x = torch.randn(6, 3, 16, 16)
    masks = torch.zeros(6, 16, dtype=torch.bool)
    masks[:, :5] = True
    out = net.forward_global(x, masks=masks, return_attention="cls")
    assert out.cls_logits.shape == (6, 32)
    assert out.patch_logits.shape == (6, 16, 32)
    assert out.attention.shape == (6, 16)
    assert net.forward_local(torch.randn(4, 3, 8, 8)).shape == (4, 32)
