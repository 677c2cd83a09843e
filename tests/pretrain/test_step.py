"""The training step's loss path, against the iBOT / DINO formulas written out by hand."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from pretrain.build import build_pretrain_loss, build_masker_from, build_network, build_optimizer_from
from pretrain.config import PretrainConfig
from pretrain.configuration import load_config
from pretrain.models.teacher_student import EMATeacher
from pretrain.step import StepModules, StudentCall, UpdateSettings, forward_losses, optimizer_step, patch_index

TINY = ["model.name=vit_pico", "model.patch_size=4", "model.drop_path_rate=0.0", "head.out_dim=16",
        "head.patch_out_dim=16", "head.hidden_dim=32", "head.bottleneck_dim=8", "data.global_size=16",
        "data.local_size=8", "data.n_local=2", "mask.strategy=random", "mask.prob=1.0"]


def hand_ibot(s_cls, t_cls, s_patch, t_patch, masks, n_global, t_temp, t_patch_temp, s_temp=0.1):
    """iBOT's two terms as in the paper, loop by loop, with both centres at zero (first step)."""
    b = t_cls.shape[0] // n_global
    s_views, t_views = s_cls.split(b), t_cls.split(b)
    terms = []
    for i, t in enumerate(t_views):
        q = F.softmax(t / t_temp, dim=-1)
        for j, s in enumerate(s_views):
            if i != j:
                terms.append(-(q * F.log_softmax(s / s_temp, dim=-1)).sum(-1).mean())
    cls = torch.stack(terms).mean()
    per_image = []
    for m in range(masks.shape[0]):
        q = F.softmax(t_patch[m] / t_patch_temp, dim=-1)
        ce = -(q * F.log_softmax(s_patch[m] / s_temp, dim=-1)).sum(-1)  # (N,)
        per_image.append((ce * masks[m]).sum() / masks[m].sum().clamp(min=1))
    return cls, torch.stack(per_image).mean()


def build(cfg: PretrainConfig, device: torch.device):
    student = build_network(cfg, student=True).to(device)
    teacher = build_network(cfg, student=False).to(device)
    ema = EMATeacher(student, teacher)
    gen = torch.Generator(device=device).manual_seed(3)
    mods = StepModules(StudentCall(student), teacher, build_pretrain_loss(cfg).to(device), build_masker_from(cfg), gen)
    return student, teacher, ema, mods


def test_step_loss_is_the_ibot_formula():
    cfg = load_config(PretrainConfig, None, TINY + ["loss.lambda_patch=0.5"])
    student, teacher, _, mods = build(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    glob, loc = torch.randn(2 * 3, 3, 16, 16), torch.randn(2 * 3, 3, 8, 8)
    out = forward_losses(mods, glob, loc, 0.04, 0.06, contextlib.nullcontext())
    assert out.masks is not None and out.masks.any()
    with torch.no_grad():
        t = teacher.forward_global(glob)
        s = student.forward_global(glob, masks=out.masks)
        s_cls = torch.cat([s.cls_logits, student.forward_local(loc)])
        cls, patch = hand_ibot(s_cls, t.cls_logits, s.patch_logits, t.patch_logits, out.masks, 2, 0.04, 0.06)
    torch.testing.assert_close(out.loss_cls, cls, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss_patch, patch, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss.detach(), cls + 0.5 * patch, rtol=1e-5, atol=1e-6)
    assert float(patch) > 0 and float(cls) > 0


def test_dino_step_has_no_patch_term_and_old_state_dict_keys():
    cfg = load_config(PretrainConfig, None, TINY[:-2] + ["loss.method=dino", "mask.strategy=none"])
    _, _, _, mods = build(cfg, torch.device("cpu"))
    out = forward_losses(mods, torch.randn(4, 3, 16, 16), torch.randn(4, 3, 8, 8), 0.04, 0.04,
                         contextlib.nullcontext())
    assert float(out.loss_patch) == 0.0 and torch.equal(out.loss.detach(), out.loss_cls)
    assert list(mods.loss.state_dict()) == ["cls.center"]
    ibot = build_pretrain_loss(load_config(PretrainConfig, None, TINY))
    assert list(ibot.state_dict()) == ["cls.center", "patch.center"]  # keys of older checkpoints


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_step_never_syncs_with_the_host_on_cuda():
    # the path that trains: teacher forward, AttMask masks, student forward, iBOTLoss, fused AdamW
    cfg = load_config(PretrainConfig, None, TINY[:-2] + ["mask.strategy=attmask_high"])
    device = torch.device("cuda")
    student, _, ema, mods = build(cfg, device)
    opt = build_optimizer_from(cfg, student, 256)
    glob, loc = torch.randn(6, 3, 16, 16, device=device), torch.randn(6, 3, 8, 8, device=device)
    sched = {"lr": 1e-4, "wd": 0.04, "momentum": 0.99}

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = forward_losses(mods, glob, loc, 0.04, 0.04, contextlib.nullcontext())
        optimizer_step(opt, None, student, out.loss, sched, 10, UpdateSettings(3.0))
        ema.update(sched["momentum"])

    step()  # warm-up: lazy CUDA initialisation may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_patch_index_keeps_every_masked_patch_in_token_order():
    masks = torch.tensor([[0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1]], dtype=torch.bool)

    class Bound:
        def max_count(self, n):
            return 3

    assert patch_index(masks, Bound()).tolist() == [[1, 3, 4], [0, 1, 2], [0, 1, 5]]
    assert patch_index(masks, None).tolist() == [list(range(6))] * 3  # no bound: every patch


@pytest.mark.parametrize("selection", ["exact", "bound"])
@pytest.mark.parametrize("strategy", ["attmask_high", "block"])
def test_step_gradients_equal_those_of_the_full_student(strategy, selection):
    # the step computes the student's last block and patch head only where the losses read them;
    # the reference (patch_selection="all", the step before issue 12) runs every token through it
    cfg = load_config(PretrainConfig, None, TINY[:-2] + [f"mask.strategy={strategy}", "mask.prob=0.7"])
    student, teacher, _, mods = build(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.01 * torch.randn_like(p))  # a teacher that differs from the student
    ref_student, ref_teacher, ref_loss = copy.deepcopy(student), copy.deepcopy(teacher), copy.deepcopy(mods.loss)
    ref_gen = torch.Generator().set_state(mods.generator.get_state())
    ref_mods = StepModules(StudentCall(ref_student), ref_teacher, ref_loss, mods.masker, ref_gen)
    glob, loc = torch.randn(2 * 4, 3, 16, 16), torch.randn(2 * 4, 3, 8, 8)
    out = forward_losses(mods, glob, loc, 0.04, 0.06, contextlib.nullcontext(), patch_selection=selection)
    ref = forward_losses(ref_mods, glob, loc, 0.04, 0.06, contextlib.nullcontext(), patch_selection="all")
    assert torch.equal(out.masks, ref.masks) and out.masks.any() and not out.masks.all(1).any()
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss_patch, ref.loss_patch, rtol=1e-5, atol=1e-6)
    out.loss.backward()
    ref.loss.backward()
    got = {n: p.grad for n, p in student.named_parameters() if p.grad is not None}
    want = {n: p.grad for n, p in ref_student.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys()
    for name, g in got.items():
        torch.testing.assert_close(g, want[name], rtol=1e-4, atol=1e-5 * float(want[name].abs().max()), msg=name)
    torch.testing.assert_close(mods.loss.patch.center, ref_loss.patch.center)
    with pytest.raises(ValueError, match="patch_selection"):
        forward_losses(mods, glob, loc, 0.04, 0.06, contextlib.nullcontext(), patch_selection="some")
