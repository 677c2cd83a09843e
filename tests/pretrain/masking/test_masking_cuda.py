"""On a GPU: masks are built on the device without a single host synchronisation."""

from __future__ import annotations

import pytest
import torch

from pretrain.masking import STRATEGIES, build_masker

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_host_sync_and_stays_on_device(strategy):
    masker = build_masker(strategy)
    gen = torch.Generator(device="cuda").manual_seed(0)
    scores = torch.rand(128, 196, device="cuda")
    masker(128, (14, 14), scores=scores, generator=gen)  # warm-up (lazy CUDA init may sync)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        masks = masker(128, (14, 14), scores=scores, generator=gen, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert masks.device.type == "cuda" and masks.shape == (128, 196)


def test_cuda_matches_exact_counts():
    masker = build_masker("attmask_hint", prob=1.0, ratio_range=(0.3, 0.3))
    masks = masker(4, (14, 14), scores=torch.rand(4, 196, device="cuda"))
    assert masks.sum(1).tolist() == [int(0.3 * 196) - int(0.1 * 0.3 * 196)] * 4
