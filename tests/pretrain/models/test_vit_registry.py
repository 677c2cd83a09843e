"""Shapes and options of every registered ViT, at small input sizes."""

from __future__ import annotations

import pytest
import torch

from pretrain.models import VisionTransformer, create_model, list_models, register_model
from pretrain.models.attention import KEY_VARIANTS

POOLINGS = ("cls", "gap", "simpool")


def test_registry_lists_the_four_sizes():
    assert list_models() == ["vit_base", "vit_pico", "vit_small", "vit_tiny"]
    assert list_models("vit_t*") == ["vit_tiny"]


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="vit_small"):
        create_model("vit_huge")


def test_arch_args_override_the_named_defaults():
    model = create_model("vit_pico", img_size=32, patch_size=8, embed_dim=64, depth=2)
    assert model.embed_dim == 64 and len(model.blocks) == 2 and model.num_heads == 4
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 64)


def test_register_model_rejects_duplicates():
    def vit_pico(**kwargs):
        return VisionTransformer(**kwargs)

    with pytest.raises(ValueError, match="already registered"):
        register_model(vit_pico)


DIMS = {"vit_pico": 128, "vit_tiny": 192, "vit_small": 384, "vit_base": 768}


def _build(name, pooling, key_variant):
    return create_model(name, img_size=32, patch_size=8, pooling=pooling, key_variant=key_variant, num_charts=2,
                        num_registers=1 if pooling == "gap" else 0, simpool_gamma=1.25 if key_variant == "kua" else None,
                        extra_img_sizes=[(32, 48)])


@pytest.mark.parametrize("name", list(DIMS))
@pytest.mark.parametrize("key_variant", KEY_VARIANTS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_shapes_every_entry(name, pooling, key_variant):
    # meta tensors: real shape propagation through every op without the cost of ViT-B maths
    with torch.device("meta"):
        model = _build(name, pooling, key_variant)
        f = model.forward_features(torch.randn(2, 3, 32, 48), return_attention="cls")
    d = DIMS[name]
    assert model.embed_dim == d and model.patch_size == 8
    assert model.num_prefix_tokens == (0 if pooling == "simpool" else 1) + (1 if pooling == "gap" else 0)
    assert model.model_name == name and model.model_kwargs["pooling"] == pooling
    assert f.pooled.shape == (2, d) and f.patch_tokens.shape == (2, 24, d) and f.attention.shape == (2, 24)
    assert f.prefix_tokens.shape == (2, model.num_prefix_tokens, d)


@pytest.mark.parametrize("key_variant", KEY_VARIANTS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_values_every_option(pooling, key_variant):
    model = _build("vit_pico", pooling, key_variant).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = model.forward_features(x, return_attention="cls")
        out = model(x)
    assert out.shape == (2, 128) and torch.isfinite(out).all()
    torch.testing.assert_close(f.pooled, out)
    assert torch.all(f.attention >= 0) and torch.all(f.attention.sum(-1) <= 1 + 1e-5)
    if pooling == "simpool":  # SimPool's map covers exactly the patches
        torch.testing.assert_close(f.attention.sum(-1), torch.ones(2))


def test_forward_backward_reaches_all_parameters():
    model = create_model("vit_pico", img_size=32, patch_size=8, pooling="simpool", simpool_gamma=1.25,
                         num_registers=2, masked_im_modeling=True)
    masks = torch.zeros(2, 16, dtype=torch.bool)
    masks[:, ::3] = True
    f = model.forward_features(torch.randn(2, 3, 32, 32), masks=masks)
    (f.pooled.sum() + f.patch_tokens.sum()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


def test_masks_replace_patch_embeddings_before_pos_embed():
    model = create_model("vit_pico", img_size=32, patch_size=8, masked_im_modeling=True).eval()
    with torch.no_grad():
        model.mask_token.normal_()
    x = torch.randn(2, 3, 32, 32)
    masks = torch.zeros(2, 16, dtype=torch.bool)
    masks[0, 3] = True
    masks[1, :5] = True
    tokens = model.prepare_tokens(x, masks)
    ref = model.prepare_tokens(x)
    pos = model.pos_embed[:, 1:]
    # masked positions hold mask_token + pos_embed, the others are unchanged
    torch.testing.assert_close(tokens[0, 1 + 3], model.mask_token[0] + pos[0, 3])
    torch.testing.assert_close(tokens[1, 1:6], model.mask_token + pos[0, :5])
    keep = ~masks
    torch.testing.assert_close(tokens[:, 1:][keep], ref[:, 1:][keep])
    torch.testing.assert_close(tokens[:, 0], ref[:, 0])
    # a masked image no longer depends on the content of its masked patches
    x2 = x.clone()
    x2[1, :, :8, :8] = 5.0  # patch 0 of image 1 is masked
    torch.testing.assert_close(model.forward_features(x2, masks).pooled, model.forward_features(x, masks).pooled)


def test_masks_without_mask_token_or_wrong_shape_raise():
    model = create_model("vit_pico", img_size=32, patch_size=8)
    with pytest.raises(ValueError, match="masked_im_modeling=True"):
        model.forward_features(torch.randn(1, 3, 32, 32), masks=torch.zeros(1, 16, dtype=torch.bool))
    model = create_model("vit_pico", img_size=32, patch_size=8, masked_im_modeling=True)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        model.forward_features(torch.randn(1, 3, 32, 32), masks=torch.zeros(1, 15, dtype=torch.bool))


def test_indivisible_input_size_raises():
    model = create_model("vit_pico", img_size=32, patch_size=8)
    with pytest.raises(ValueError, match="not divisible by the patch size 8"):
        model(torch.randn(1, 3, 30, 32))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("pos_embed", ["learned", "sincos"])
def test_other_input_sizes(pooling, pos_embed):
    model = create_model("vit_pico", img_size=32, patch_size=8, pooling=pooling, pos_embed=pos_embed,
                         num_registers=2).eval()
    with torch.no_grad():
        for hw in [(16, 16), (48, 64), (32, 32)]:
            f = model.forward_features(torch.randn(2, 3, *hw), return_attention="full")
            n = (hw[0] // 8) * (hw[1] // 8)
            assert f.patch_tokens.shape == (2, n, 128)
            t = model.num_prefix_tokens + n
            assert f.attention.shape == (2, 4, t, t)


def test_learned_pos_embed_is_resampled_bicubically():
    model = create_model("vit_pico", img_size=32, patch_size=8)
    same = model._pos_embed_for((4, 4), torch.device("cpu"))
    assert same is model.pos_embed
    with torch.no_grad():  # a smooth table (linear ramp in x) stays a ramp when upsampled
        ramp = torch.linspace(-1, 1, 4).repeat(4)[None, :, None].expand(1, 16, 128)
        model.pos_embed[:, 1:] = ramp
    big = model._pos_embed_for((8, 8), torch.device("cpu"))
    assert big.shape == (1, 65, 128)
    torch.testing.assert_close(big[:, 0], model.pos_embed[:, 0])  # [CLS] row untouched
    row = big[0, 1:9, 0]
    assert torch.all(row[1:] >= row[:-1]) and row[0] < -0.8 and row[-1] > 0.8


def test_sincos_is_recomputed_for_new_grids_not_interpolated():
    from pretrain.models.pos_embed import sincos_2d

    model = create_model("vit_pico", img_size=32, patch_size=8, pos_embed="sincos")
    assert "pos_embed" not in model.state_dict()  # fixed, not a weight
    torch.testing.assert_close(model._pos_embed_for((6, 3), torch.device("cpu")), sincos_2d(128, (6, 3), 1))


def test_registers_are_excluded_from_cls_attention_and_patch_tokens():
    model = create_model("vit_pico", img_size=32, patch_size=8, num_registers=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = model.forward_features(x, return_attention="cls")
        full = model.forward_features(x, return_attention="full").attention
    assert f.prefix_tokens.shape == (2, 4, 128)
    assert f.attention.shape == (2, 16)
    torch.testing.assert_close(f.attention, full[:, :, 0, 4:].mean(1))


def test_intermediate_layers_last_one_matches_forward():
    model = create_model("vit_pico", img_size=32, patch_size=8).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        layers = model.get_intermediate_layers(x, n=2)
        f = model.forward_features(x)
    assert len(layers) == 2 and layers[0].shape == (2, 17, 128)
    torch.testing.assert_close(layers[-1][:, 0], f.pooled)
    assert not torch.allclose(layers[0], layers[1])


def test_drop_path_is_per_sample_and_only_in_training():
    from pretrain.models.layers import drop_path

    x = torch.ones(2000, 3, 4)
    y = drop_path(x, 0.25, training=True)
    per_sample = y.flatten(1)
    # each sample is either all zero or all 1/keep
    assert torch.all((per_sample == 0).all(1) | torch.isclose(per_sample, torch.tensor(1 / 0.75)).all(1))
    frac = (per_sample[:, 0] == 0).float().mean().item()
    assert 0.2 < frac < 0.3
    assert drop_path(x, 0.25, training=False) is x
    model = create_model("vit_pico", img_size=32, patch_size=8, drop_path_rate=0.3)
    probs = [b.drop_path.prob for b in model.blocks]
    assert probs[0] == 0.0 and probs[-1] == pytest.approx(0.3)


def test_unknown_option_values_raise():
    for kw in ({"pooling": "max"}, {"pos_embed": "rope"}, {"key_variant": "fancy"}):
        with pytest.raises(ValueError, match="choose one of"):
            create_model("vit_pico", **kw)
    with pytest.raises(ValueError, match="return_attention"):
        create_model("vit_pico", img_size=32, patch_size=8).forward_features(torch.randn(1, 3, 32, 32),
                                                                             return_attention="rows")
