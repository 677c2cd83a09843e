"""Parameter groups, schedules, gradient clipping and last-layer freezing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pretrain.optim import (
    build_optimizer,
    cancel_last_layer_grads_,
    clip_gradients_,
    cosine_schedule,
    make_schedules,
    param_groups,
    reference_cosine_schedule,
    reference_teacher_temp_schedule,
    set_schedules_,
    teacher_temp_schedule,
)


class TinyViTLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.mask_token = nn.Parameter(torch.zeros(1, 4))
        self.reg_token = nn.Parameter(torch.zeros(1, 2, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.beta = nn.Parameter(torch.zeros(()))
        self.head = nn.Sequential(nn.Linear(4, 3))
        self.last_layer = nn.Linear(3, 2, bias=False)
        self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)


def _names(module: nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in module.named_parameters() if id(p) in ids}


def test_param_group_membership():
    model = TinyViTLike()
    ordered = param_groups(model, weight_decay=0.04)
    assert [g["name"] for g in ordered] == ["decay", "no_decay"]  # index 0 is the decayed group
    groups = {g["name"]: g for g in ordered}
    assert _names(model, groups["decay"]) == {"proj.weight", "head.0.weight", "last_layer.weight"}
    assert _names(model, groups["no_decay"]) == {
        "cls_token", "mask_token", "reg_token", "pos_embed", "proj.bias",
        "norm.weight", "norm.bias", "beta", "head.0.bias",
    }
    assert groups["decay"]["weight_decay"] == 0.04 and groups["no_decay"]["weight_decay"] == 0.0


def test_groups_keep_order_when_one_is_empty():
    groups = param_groups(nn.LayerNorm(4), weight_decay=0.1)
    assert [g["name"] for g in groups] == ["decay", "no_decay"] and groups[0]["params"] == []
    build_optimizer(groups, lr=1e-3)  # AdamW accepts the empty group
    with pytest.raises(ValueError, match="no parameters"):
        build_optimizer(param_groups(TinyViTLike().requires_grad_(False), 0.1), lr=1e-3)


def test_cosine_schedule_values():
    sched = cosine_schedule(1.0, 0.0, total_steps=12, warmup_steps=2, warmup_start=0.2)
    assert sched.shape == (12,)
    np.testing.assert_allclose(sched[:3], [0.2, 0.6, 1.0])
    assert sched[-1] == pytest.approx(0.0)
    mid = 2 + 9 / 2  # halfway through the 10 cosine steps (indices 0..9)
    assert np.interp(mid, np.arange(12), sched) == pytest.approx(0.5)
    assert np.all(np.diff(sched[2:]) < 0)


def test_weight_decay_and_momentum_schedules():
    wd = cosine_schedule(0.04, 0.4, 100)
    assert wd[0] == pytest.approx(0.04) and wd[-1] == pytest.approx(0.4)
    assert np.all(np.diff(wd) > 0)
    mom = cosine_schedule(0.996, 1.0, 1000)
    assert mom[0] == pytest.approx(0.996) and mom[-1] == pytest.approx(1.0)
    assert mom[500] == pytest.approx(0.998, abs=1e-5)


def test_teacher_temp_schedule():
    temps = teacher_temp_schedule(0.04, 0.07, warmup_steps=3, total_steps=6)
    np.testing.assert_allclose(temps, [0.04, 0.05, 0.06, 0.07, 0.07, 0.07])
    np.testing.assert_allclose(teacher_temp_schedule(0.04, 0.07, 0, 3), [0.07] * 3)


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_schedule(1.0, 0.0, total_steps=5, warmup_steps=6)


def test_clip_gradients_returns_norm_and_clips():
    model = nn.Linear(3, 1, bias=False)
    model.weight.grad = torch.tensor([[3.0, 4.0, 0.0]])
    norm = clip_gradients_(model, max_norm=1.0)
    assert isinstance(norm, torch.Tensor) and norm.item() == pytest.approx(5.0)
    assert model.weight.grad.norm().item() == pytest.approx(1.0, rel=1e-4)
    model.weight.grad = torch.tensor([[0.3, 0.4, 0.0]])
    clip_gradients_(model, max_norm=1.0)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.3, 0.4, 0.0]]))
    assert clip_gradients_(nn.Linear(2, 2), 1.0).item() == 0.0  # no grads yet


def test_cancel_last_layer_grads_only_during_freeze():
    model = TinyViTLike()
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.ones_like(p)
    cancel_last_layer_grads_(model, step=5, freeze_steps=10)
    assert model.last_layer.weight.grad is None
    assert model.proj.weight.grad is not None
    model.last_layer.weight.grad = torch.ones_like(model.last_layer.weight)
    cancel_last_layer_grads_(model, step=10, freeze_steps=10)
    assert model.last_layer.weight.grad is not None


def test_build_optimizer_and_set_schedules():
    model = TinyViTLike()
    opt = build_optimizer(param_groups(model, 0.04), lr=1e-3)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["fused"] is True  # torch >= 2.4 has a fused AdamW on CPU too
    assert build_optimizer(param_groups(model, 0.04), lr=1e-3, fused=False).defaults["foreach"] is True
    set_schedules_(opt, lr=0.5, weight_decay=0.3)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["decay"]["lr"] == by_name["no_decay"]["lr"] == 0.5
    assert by_name["decay"]["weight_decay"] == 0.3 and by_name["no_decay"]["weight_decay"] == 0.0
    before = model.pos_embed.detach().clone()
    model.pos_embed.grad = torch.ones_like(model.pos_embed)
    opt.step()
    assert not torch.equal(before, model.pos_embed)
    assert not math.isnan(model.pos_embed.sum().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_on_cuda():
    model = nn.Linear(4, 4).cuda()
    opt = build_optimizer(param_groups(model, 0.04), lr=1e-3)
    assert opt.defaults["fused"] is True


def test_fused_adamw_skips_the_update_when_found_inf_is_set():
    # the training step relies on this to skip non-finite steps without a host sync
    model = TinyViTLike()
    opt = build_optimizer(param_groups(model, 0.04), lr=1e-1)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in model.parameters()]
    opt.found_inf = torch.tensor(1.0)
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    opt.found_inf = torch.tensor(0.0)
    opt.step()
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ----------------------------------------------------------------------------- DINO's reference schedules


def test_reference_cosine_is_dinos_cosine_scheduler_value_for_value():
    # 3 epochs x 2 steps, 1 warm-up epoch: linspace(0, 1, 2) = [0, 1], then over 4 steps
    # 0.1 + 0.45 * (1 + cos(pi * i / 4)), i = 0..3 (never reaching 0.1 exactly)
    got = reference_cosine_schedule(1.0, 0.1, epochs=3, steps_per_epoch=2, warmup_epochs=1)
    c = math.cos
    want = [0.0, 1.0, 1.0, 0.1 + 0.45 * (1 + c(math.pi / 4)), 0.1 + 0.45, 0.1 + 0.45 * (1 + c(3 * math.pi / 4))]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert got[-1] > 0.1  # the reference stops one step short of the final value
    no_warm = reference_cosine_schedule(0.04, 0.4, epochs=1, steps_per_epoch=2)
    np.testing.assert_allclose(no_warm, [0.04, 0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi / 2))], atol=1e-15)


def test_reference_teacher_temperature_steps_once_per_epoch_and_reaches_the_value_at_29():
    t = reference_teacher_temp_schedule(0.04, 0.07, warmup_epochs=30, epochs=100, steps_per_epoch=3)
    per_epoch = t[::3]
    assert np.all(t.reshape(100, 3) == per_epoch[:, None])  # constant within an epoch
    assert per_epoch[0] == 0.04 and per_epoch[29] == 0.07 and per_epoch[28] < 0.07
    np.testing.assert_allclose(per_epoch[1], 0.04 + 0.03 / 29, atol=1e-15)
    assert np.all(per_epoch[29:] == 0.07)
    short = reference_teacher_temp_schedule(0.04, 0.07, warmup_epochs=30, epochs=2, steps_per_epoch=1)
    np.testing.assert_allclose(short, [0.04, 0.04 + 0.03 / 29], atol=1e-15)  # cut at the run's end


def _schedules(mode: str):
    return make_schedules(epochs=4, steps_per_epoch=2, lr=1.0, min_lr=0.0, warmup_epochs=1, weight_decay=0.04,
                          weight_decay_end=0.4, momentum_teacher=0.996, warmup_teacher_temp=0.04,
                          teacher_temp=0.07, warmup_teacher_patch_temp=0.03, teacher_patch_temp=0.05,
                          warmup_teacher_temp_epochs=2, mode=mode)


def test_schedules_modes_reference_by_default_and_exact_as_option():
    ref, exact = _schedules("reference"), _schedules("exact")
    np.testing.assert_array_equal(ref.lr, reference_cosine_schedule(1.0, 0.0, 4, 2, 1))
    np.testing.assert_array_equal(ref.momentum, reference_cosine_schedule(0.996, 1.0, 4, 2))
    np.testing.assert_array_equal(ref.teacher_temp, [0.04, 0.04, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07])
    # iBOT's separate patch temperature, same warm-up epochs
    np.testing.assert_array_equal(ref.teacher_patch_temp, [0.03, 0.03, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    assert exact.lr[-1] == 0.0 and exact.momentum[-1] == 1.0  # ours ends exactly on the final value
    np.testing.assert_allclose(exact.teacher_temp[:5], [0.04, 0.04 + 0.03 / 4, 0.04 + 0.03 / 2, 0.04 + 0.0225, 0.07])
    assert ref.at(100)["teacher_patch_temp"] == 0.05
    with pytest.raises(ValueError, match="reference"):
        _schedules("dino")


def test_per_param_clipping_is_the_dino_ibot_reference_and_global_differs():
    """mode="per_param" scales each gradient on its own, as DINO / iBOT / AttMask's clip_gradients
    (reference loop written out below); "global" scales all by one factor."""
    def grads():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        for i, p in enumerate(model.parameters()):
            p.grad = torch.randn_like(p) * (10.0 if i % 2 == 0 else 0.01)  # some above, some below 3
        return model

    ours, ref = grads(), grads()
    total = clip_gradients_(ours, 3.0, "per_param")
    norms = []
    for p in ref.parameters():  # the reference utils.clip_gradients, value for value
        param_norm = p.grad.data.norm(2)
        norms.append(param_norm.item())
        clip_coef = 3.0 / (param_norm + 1e-6)
        if clip_coef < 1:
            p.grad.data.mul_(clip_coef)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=0)
    assert total.item() == pytest.approx(float(np.linalg.norm(norms)), rel=1e-6)
    assert max(norms) > 3.0 > min(norms)  # the case where the two modes differ
    hand = nn.Linear(2, 1)
    hand.weight.grad, hand.bias.grad = torch.tensor([[3.0, 4.0]]), torch.tensor([0.3])
    clip_gradients_(hand, 1.0, "per_param")
    torch.testing.assert_close(hand.weight.grad, torch.tensor([[0.6, 0.8]]))  # 5 -> 1
    torch.testing.assert_close(hand.bias.grad, torch.tensor([0.3]))  # below 1: untouched
    hand.weight.grad, hand.bias.grad = torch.tensor([[3.0, 4.0]]), torch.tensor([0.3])
    clip_gradients_(hand, 1.0, "global")  # one factor 1 / |(3, 4, 0.3)| for both
    assert hand.bias.grad.item() == pytest.approx(0.3 / float(np.linalg.norm([3.0, 4.0, 0.3])), rel=1e-5)
    with pytest.raises(ValueError, match="clip mode"):
        clip_gradients_(hand, 1.0, "layerwise")
