"""Attention maps: hooks agree with the model's own explicit attention, batched == per image, timm too."""

from __future__ import annotations

import pytest
import torch

from downstream.localization.maps import (
    attention_maps,
    patch_keys,
    select_heads,
    upsample,
)
from pretrain.models import create_model, load_pretrained


@pytest.fixture(scope="module")
def pico():
    torch.manual_seed(0)
    return create_model("vit_pico", img_size=28, patch_size=7).eval()


def test_last_block_heads_match_explicit_full_attention(pico):
    x = torch.randn(3, 3, 28, 28)
    maps = attention_maps(pico, x)  # (3, 4, 4, 4)
    full = pico.forward_features(x, return_attention="full").attention  # (3, h, T, T)
    assert maps.shape == (3, 4, 4, 4)
    torch.testing.assert_close(maps.flatten(2), full[:, :, 0, 1:], atol=1e-6, rtol=1e-5)
    cls_mean = pico.forward_features(x, return_attention="cls").attention
    torch.testing.assert_close(select_heads(maps, "mean").flatten(1), cls_mean, atol=1e-6, rtol=1e-5)


def test_batched_equals_per_image(pico):
    x = torch.randn(3, 3, 28, 28)
    for block in (0, -1):
        batched = attention_maps(pico, x, block=block)
        single = torch.cat([attention_maps(pico, x[i:i + 1], block=block) for i in range(3)])
        torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)
    keys = patch_keys(pico, x)
    assert keys.shape == (3, 16, 128)
    torch.testing.assert_close(keys, torch.cat([patch_keys(pico, x[i:i + 1]) for i in range(3)]), atol=1e-6,
                               rtol=1e-5)


def test_simpool_map_and_errors():
    torch.manual_seed(0)
    model = create_model("vit_pico", img_size=28, patch_size=7, pooling="simpool").eval()
    x = torch.randn(2, 3, 28, 28)
    maps = attention_maps(model, x)
    assert maps.shape == (2, 1, 4, 4)
    torch.testing.assert_close(maps.flatten(1), model.forward_features(x, return_attention="cls").attention)
    with pytest.raises(ValueError, match="not divisible by the patch size 7"):
        attention_maps(model, torch.randn(1, 3, 30, 28))
    with pytest.raises(ValueError, match="head 9 does not exist"):
        select_heads(maps, 9)


@pytest.mark.slow  # importing timm takes seconds
def test_timm_vit_maps_match_ours_with_the_same_weights():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    tm = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=0).eval()
    ours = create_model("vit_tiny", img_size=32, patch_size=16).eval()
    report = load_pretrained(ours, tm.state_dict())
    assert report.loaded > 0 and not report.missing
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(attention_maps(tm, x, block=1), attention_maps(ours, x, block=1), atol=1e-5,
                               rtol=1e-4)


def test_upsample_bicubic_shape_and_constant():
    up = upsample(torch.full((2, 3, 4, 4), 0.25), (28, 28))
    assert up.shape == (2, 3, 28, 28)
    torch.testing.assert_close(up, torch.full_like(up, 0.25))
