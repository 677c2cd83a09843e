"""Manifold-key attention (Meng et al., 2024): variants, parameter counts, token counts."""

from __future__ import annotations

import pytest
import torch

from pretrain.models import create_model
from pretrain.models.manifold_key import MANIFOLD_KEY_VARIANTS, ManifoldKey


def _count(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("variant", MANIFOLD_KEY_VARIANTS)
def test_parameter_count_matches_the_paper_formula(variant):
    d, h, t = 16, 3, 7
    key = ManifoldKey(d, num_charts=h, variant=variant, token_counts=[t])
    expected = h * d * d + h * d  # key expansion W (H*D x D) and Gamma (H*D)
    expected += h * t * t if variant != "simplek" else t * h * t  # grouped vs dense Conv1d
    expected += d if variant in ("kua", "vanillak") else 0  # context broadcasting gamma'
    expected += h * d * d if variant in ("spatialk", "kua") else 0  # to_out
    assert _count(key) == expected


def test_vanillak_matches_a_loop_reference():
    d, h, t = 8, 2, 5
    key = ManifoldKey(d, num_charts=h, variant="vanillak", token_counts=[t])
    with torch.no_grad():
        key.gamma.uniform_(0.5, 1.5)
        key.cb_gamma.uniform_(0.5, 1.5)
    x = torch.randn(2, t, d)
    expanded = key.k(x) * key.gamma  # (B, T, H*D)
    charts = []
    for c in range(h):  # Conv1d(H*T, H*T, 1, groups=H) on the chart-major layout
        chart = expanded[..., c * d:(c + 1) * d]  # (B, T, D)
        charts.append(torch.einsum("st,btd->bsd", key.mixing[f"t{t}"][c], chart))
    stacked = torch.stack(charts, 1)  # (B, H, T, D)
    broadcast = (stacked * key.cb_gamma).mean(dim=(1, 2), keepdim=True)
    ref = (0.5 * (stacked + broadcast)).mean(1)
    torch.testing.assert_close(key(x), ref)


def test_simplek_is_one_dense_conv_over_chart_token_channels():
    d, h, t = 8, 3, 4
    key = ManifoldKey(d, num_charts=h, variant="simplek", token_counts=[t])
    x = torch.randn(2, t, d)
    conv = torch.nn.Conv1d(h * t, t, kernel_size=1, bias=False)
    conv.weight.data = key.mixing[f"t{t}"].unsqueeze(-1)
    expanded = (key.k(x) * key.gamma).view(2, t, h, d).transpose(1, 2).reshape(2, h * t, d)
    torch.testing.assert_close(key(x), conv(expanded))


def test_unregistered_token_count_raises_naming_count_and_fix():
    model = create_model("vit_pico", img_size=32, patch_size=8, key_variant="kua")
    with pytest.raises(ValueError, match=r"got 5 tokens.*extra_img_sizes"):
        model(torch.randn(1, 3, 16, 16))  # 1 + 2*2 tokens, only 17 registered


def test_extra_img_sizes_register_separate_mixing_per_token_count():
    model = create_model("vit_pico", img_size=32, patch_size=8, key_variant="vanillak", extra_img_sizes=(16,))
    key = model.blocks[0].attn.key
    assert key.token_counts == [5, 17]
    assert key.mixing["t17"].shape == (4, 17, 17) and key.mixing["t5"].shape == (4, 5, 5)
    global_out = model(torch.randn(2, 3, 32, 32))
    local_out = model(torch.randn(2, 3, 16, 16))
    assert global_out.shape == local_out.shape == (2, 128)
    # local crops only train their own mixing weights; the shared key projection gets gradient
    local_out.sum().backward()
    assert key.mixing["t17"].grad is None and key.mixing["t5"].grad is not None
    assert key.k.weight.grad is not None


def test_add_img_size_after_construction():
    model = create_model("vit_pico", img_size=32, patch_size=8, key_variant="spatialk", num_registers=1)
    model.add_img_size((16, 24))
    assert model.blocks[-1].attn.key.token_counts == [8, 18]
    assert model(torch.randn(1, 3, 16, 24)).shape == (1, 128)


def test_standard_models_accept_any_size_and_ignore_extra_sizes():
    model = create_model("vit_pico", img_size=32, patch_size=8, extra_img_sizes=(16,))
    model.add_img_size(48)
    assert model(torch.randn(1, 3, 40, 24)).shape == (1, 128)


def test_bad_variant_raises():
    with pytest.raises(ValueError, match="choose one of"):
        ManifoldKey(8, variant="bigk")
