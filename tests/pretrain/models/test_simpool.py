"""SimPool (Psomas et al., ICCV 2023) edge cases."""

from __future__ import annotations

import pytest
import torch

from pretrain.models import create_model
from pretrain.models.pooling import SimPool


@pytest.mark.parametrize("gamma", [None, 1.25])
def test_batch_of_one_keeps_its_batch_dimension(gamma):
    pool = SimPool(16, gamma=gamma)
    pooled, attn = pool(torch.randn(1, 9, 16))
    assert pooled.shape == (1, 16) and attn.shape == (1, 9)
    model = create_model("vit_pico", img_size=32, patch_size=8, pooling="simpool", simpool_gamma=gamma)
    f = model.forward_features(torch.randn(1, 3, 32, 32), return_attention="cls")
    assert f.pooled.shape == (1, 128) and f.attention.shape == (1, 16)


def test_plain_simpool_formula():
    pool = SimPool(16)
    x = torch.randn(2, 9, 16)
    pooled, attn = pool(x)
    v = torch.nn.functional.layer_norm(x, (16,), pool.norm_patches.weight, pool.norm_patches.bias, 1e-6)
    q = pool.wq(x.mean(1))
    k = pool.wk(v)
    a = torch.softmax(torch.einsum("bd,bnd->bn", q, k) / 4.0, dim=-1)
    torch.testing.assert_close(attn, a)
    torch.testing.assert_close(pooled, torch.einsum("bn,bnd->bd", a, v))


def test_gamma_variant_formula_with_per_sample_min_and_beta():
    pool = SimPool(16, gamma=2.0)
    with torch.no_grad():
        pool.beta.fill_(0.5)
    x = torch.randn(2, 9, 16)
    pooled, attn = pool(x)
    v = pool.norm_patches(x)
    shifted = v - v.amin(dim=(1, 2), keepdim=True) + 1e-6
    ref = torch.einsum("bn,bnd->bd", attn, shifted**2).sqrt() + 0.5
    torch.testing.assert_close(pooled, ref)
    assert SimPool(16, gamma=1.25).beta.abs().sum() == 0  # beta starts at 0


@pytest.mark.parametrize("gamma", [None, 1.25])
def test_sample_output_independent_of_other_samples(gamma):
    model = create_model("vit_pico", img_size=32, patch_size=8, pooling="simpool", simpool_gamma=gamma).eval()
    x = torch.randn(3, 3, 32, 32)
    y = x.clone()
    y[1:] = 50.0 * torch.randn(2, 3, 32, 32) - 20.0  # very different neighbours shift a batch-wide min
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)


def test_simpool_model_has_no_cls_token_or_cls_position():
    model = create_model("vit_pico", img_size=32, patch_size=8, pooling="simpool")
    assert model.cls_token is None and model.num_prefix_tokens == 0
    assert model.pos_embed.shape == (1, 16, 128)


def test_simpool_attention_is_returned_as_masking_score():
    model = create_model("vit_pico", img_size=32, patch_size=8, pooling="simpool").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = model.forward_features(x, return_attention="cls")
        last = model.get_intermediate_layers(x, n=1)[0]  # normed; recompute the raw last block input
        tokens = model.prepare_tokens(x)
        for blk in model.blocks:
            tokens, _ = blk(tokens)
        _, ref = model.simpool(tokens)
    torch.testing.assert_close(f.attention, ref)
    torch.testing.assert_close(f.pooled, model.norm(model.simpool(tokens)[0]))
    assert last.shape == (2, 16, 128)


def test_gamma_variant_is_stable_under_bf16_autocast():
    pool = SimPool(16, gamma=1.25)
    x = torch.randn(2, 9, 16)
    ref, _ = pool(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _attn = pool(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


def test_bad_gamma_raises():
    with pytest.raises(ValueError, match="positive"):
        SimPool(8, gamma=0.0)
