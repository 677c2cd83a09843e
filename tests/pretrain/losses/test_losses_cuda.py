"""On a GPU: the losses and their centre updates never synchronise with the host."""

from __future__ import annotations

import pytest
import torch

from pretrain.losses import iBOTLoss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_ibot_loss_no_host_sync_under_bf16_autocast():
    loss_fn = iBOTLoss(64, 32, n_global=2, n_local=2).cuda()
    b, n = 4, 9
    s_cls = torch.randn(4 * b, 64, device="cuda", requires_grad=True)
    t_cls = torch.randn(2 * b, 64, device="cuda")
    s_p = torch.randn(2 * b, n, 32, device="cuda", requires_grad=True)
    t_p = torch.randn(2 * b, n, 32, device="cuda")
    masks = torch.rand(2 * b, n, device="cuda") < 0.3
    loss_fn(s_cls, t_cls, s_p, t_p, masks, 0.04)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            terms = loss_fn(s_cls, t_cls, s_p, t_p, masks, 0.04)
        terms.total.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert terms.total.dtype == torch.float32 and torch.isfinite(terms.total)
    assert loss_fn.cls.center.device.type == "cuda"
