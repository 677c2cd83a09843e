"""Computing only the tokens a loss reads (``keep`` / ``keep_patches``) gives the same rows and gradients."""

from __future__ import annotations

import pytest
import torch

from pretrain.models import create_model
from pretrain.models.attention import Attention
from pretrain.models.layers import Block
from pretrain.models.teacher_student import build_multicrop_network


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _index(batch: int, tokens: int, q: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(tokens, generator=g)[:q] for _ in range(batch)])


@pytest.mark.parametrize("key_variant", ["standard", "vanillak"])
@pytest.mark.parametrize("path", ["fused", "explicit"])
def test_block_keep_is_the_rows_of_the_full_block_forward_and_backward(key_variant, path):
    torch.manual_seed(0)
    block = Block(32, 4, key_variant=key_variant, num_charts=2, token_counts=[9], attention=path)
    x = torch.randn(3, 9, 32)
    weight = torch.randn(3, 4, 32)
    for keep in (_index(3, 9, 4), 2):
        rows = keep if isinstance(keep, torch.Tensor) else torch.arange(keep).expand(3, keep)
        x_full = x.clone().requires_grad_()
        full, _ = block(x_full)
        picked = torch.gather(full, 1, rows[..., None].expand(-1, -1, 32))
        (picked * weight[:, : rows.shape[1]]).sum().backward()
        ref_grads, ref_x = _grads(block), x_full.grad
        block.zero_grad()
        x_kept = x.clone().requires_grad_()
        kept, _ = block(x_kept, keep=keep)
        assert kept.shape == (3, rows.shape[1], 32)
        torch.testing.assert_close(kept, picked, atol=1e-5, rtol=1e-5)
        (kept * weight[:, : rows.shape[1]]).sum().backward()
        torch.testing.assert_close(x_kept.grad, ref_x, atol=1e-5, rtol=1e-5)
        got = _grads(block)
        assert got.keys() == ref_grads.keys()
        for name, g in got.items():
            torch.testing.assert_close(g, ref_grads[name], atol=1e-5, rtol=1e-5, msg=name)
        block.zero_grad()


def test_keep_with_the_cls_row_and_refused_with_the_full_map():
    attn = Attention(32, num_heads=4)
    x = torch.randn(2, 7, 32)
    _, cls_full = attn(x, return_attention="cls")
    out, cls_kept = attn(x, return_attention="cls", keep=torch.tensor([[0, 3], [0, 5]]))
    torch.testing.assert_close(cls_kept, cls_full)
    torch.testing.assert_close(out[:, 0], attn(x)[0][:, 0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="without keep"):
        attn(x, return_attention="full", keep=2)


@pytest.mark.parametrize("kwargs", [{"pooling": "cls"}, {"pooling": "cls", "num_registers": 2},
                                    {"pooling": "gap"}, {"pooling": "simpool"}])
def test_vit_keep_patches_returns_the_same_pooled_and_picked_patch_tokens(kwargs):
    torch.manual_seed(0)
    vit = create_model("vit_pico", patch_size=4, img_size=16, masked_im_modeling=True, **kwargs).eval()
    x = torch.randn(3, 3, 16, 16)
    masks = torch.rand(3, 16) < 0.3
    full = vit.forward_features(x, masks=masks, return_attention="cls")
    for m in (5, 0):
        index = _index(3, 16, m, seed=m)
        kept = vit.forward_features(x, masks=masks, return_attention="cls", keep_patches=index)
        torch.testing.assert_close(kept.pooled, full.pooled, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(kept.prefix_tokens, full.prefix_tokens, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(kept.attention, full.attention, atol=1e-6, rtol=1e-5)
        expected = torch.gather(full.patch_tokens, 1, index[..., None].expand(-1, -1, vit.embed_dim))
        assert kept.patch_tokens.shape == (3, m, vit.embed_dim)
        torch.testing.assert_close(kept.patch_tokens, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="keep_patches"):
        vit.forward_features(x, keep_patches=torch.zeros(2, 3, dtype=torch.long))


def test_cls_pooling_with_keep_patches_runs_fewer_flops():
    from torch.utils.flop_counter import FlopCounterMode

    vit = create_model("vit_pico", patch_size=4, img_size=16)
    x = torch.randn(2, 3, 16, 16)
    counts = []
    for keep in (None, torch.zeros(2, 0, dtype=torch.long)):
        with FlopCounterMode(display=False) as counter:
            vit.forward_features(x, keep_patches=keep)
        counts.append(counter.get_total_flops())
    # the last of 4 blocks computes 1 of 17 queries: its q, proj and MLP shrink 17x, its k, v do not
    assert 0.70 * counts[0] < counts[1] < 0.85 * counts[0]


@pytest.mark.parametrize("with_patch", [True, False])
def test_network_outputs_and_gradients_equal_the_full_computation(with_patch):
    torch.manual_seed(0)
    backbone = create_model("vit_pico", patch_size=4, img_size=16, masked_im_modeling=True)
    net = build_multicrop_network(backbone, 12, 10, hidden_dim=16, bottleneck_dim=8, with_patch=with_patch)
    glob, loc = torch.randn(4, 3, 16, 16), torch.randn(6, 3, 8, 8)
    masks = torch.rand(4, 16) < 0.4
    index = _index(4, 16, 6)
    w_cls, w_loc, w_patch = torch.randn(4, 12), torch.randn(6, 12), torch.randn(4, 6, 10)

    def loss(g_cls, l_cls, patch):
        out = (g_cls * w_cls).sum() + (l_cls * w_loc).sum()
        return out + (patch * w_patch).sum() if patch is not None else out

    # reference: every token through the whole network, then the rows the loss reads
    f = backbone.forward_features(glob, masks=masks)
    ref_cls = net.head(f.pooled) if not with_patch else net.head.forward_tokens(f.pooled, f.patch_tokens)[0]
    ref_patch = None
    if with_patch:
        ref_patch = torch.gather(net.head.forward_tokens(f.pooled, f.patch_tokens)[1], 1,
                                 index[..., None].expand(-1, -1, 10))
    ref_loc = net.head(backbone.forward_features(loc).pooled)
    loss(ref_cls, ref_loc, ref_patch).backward()
    ref = _grads(net)
    net.zero_grad()

    out = net.forward_global(glob, masks=masks, keep_patches=index)
    local = net.forward_local(loc)
    torch.testing.assert_close(out.cls_logits, ref_cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(local, ref_loc, atol=1e-5, rtol=1e-5)
    if with_patch:
        torch.testing.assert_close(out.patch_logits, ref_patch, atol=1e-5, rtol=1e-5)
    loss(out.cls_logits, local, out.patch_logits).backward()
    got = _grads(net)
    assert got.keys() == ref.keys()
    for name, g in got.items():
        torch.testing.assert_close(g, ref[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize(("drop_path", "key_variant"), [(0.0, "standard"), (0.5, "standard"), (0.0, "vanillak")])
def test_flat_keep_is_the_rows_of_the_full_block_with_the_same_drop_path_draws(drop_path, key_variant):
    torch.manual_seed(0)
    block = Block(32, 4, drop_path=drop_path, key_variant=key_variant, num_charts=2, token_counts=[9],
                  attention="explicit").train()
    x = torch.randn(4, 9, 32)
    rows, tokens = torch.tensor([0, 0, 1, 3, 3, 3]), torch.tensor([0, 4, 0, 0, 2, 8])
    weight = torch.randn(6, 32)
    torch.manual_seed(7)
    x_full = x.clone().requires_grad_()
    full, _ = block(x_full)
    (full[rows, tokens] * weight).sum().backward()
    ref_grads, ref_x = _grads(block), x_full.grad
    block.zero_grad()
    torch.manual_seed(7)  # same generator state: the same per-image drop-path draws
    x_kept = x.clone().requires_grad_()
    kept, _ = block(x_kept, keep=(rows, tokens))
    assert kept.shape == (6, 32)
    torch.testing.assert_close(kept, full[rows, tokens], atol=1e-5, rtol=1e-5)
    (kept * weight).sum().backward()
    torch.testing.assert_close(x_kept.grad, ref_x, atol=1e-5, rtol=1e-5)
    for name, g in _grads(block).items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-5, rtol=1e-5, msg=name)
    with pytest.raises(ValueError, match="without keep"):
        block(x, "cls", keep=(rows, tokens))


@pytest.mark.parametrize("kwargs", [{"pooling": "cls"}, {"pooling": "cls", "num_registers": 2}, {"pooling": "gap"}])
def test_vit_bool_keep_patches_gives_the_selected_patch_tokens_flat(kwargs):
    torch.manual_seed(0)
    vit = create_model("vit_pico", patch_size=4, img_size=16, masked_im_modeling=True, **kwargs).eval()
    x = torch.randn(3, 3, 16, 16)
    masks = torch.rand(3, 16) < 0.3
    masks[1] = False  # an image with nothing selected
    full = vit.forward_features(x, masks=masks)
    kept = vit.forward_features(x, masks=masks, keep_patches=masks)
    assert kept.patch_tokens.shape == (int(masks.sum()), vit.embed_dim)
    torch.testing.assert_close(kept.patch_tokens, full.patch_tokens[masks], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kept.pooled, full.pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kept.prefix_tokens, full.prefix_tokens, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="keep_patches"):
        vit.forward_features(x, keep_patches=masks[:, :5])


def test_network_flat_patch_logits_and_gradients_equal_the_full_computation():
    torch.manual_seed(0)
    backbone = create_model("vit_pico", patch_size=4, img_size=16, masked_im_modeling=True)
    net = build_multicrop_network(backbone, 12, 10, hidden_dim=16, bottleneck_dim=8)
    glob = torch.randn(4, 3, 16, 16)
    masks = torch.rand(4, 16) < 0.4
    w_cls, w_patch = torch.randn(4, 12), torch.randn(int(masks.sum()), 10)
    full = net.forward_global(glob, masks=masks)
    ((full.cls_logits * w_cls).sum() + (full.patch_logits[masks] * w_patch).sum()).backward()
    ref = _grads(net)
    net.zero_grad()
    out = net.forward_global(glob, masks=masks, keep_patches=masks)
    torch.testing.assert_close(out.cls_logits, full.cls_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.patch_logits, full.patch_logits[masks], atol=1e-5, rtol=1e-5)
    ((out.cls_logits * w_cls).sum() + (out.patch_logits * w_patch).sum()).backward()
    for name, g in _grads(net).items():
        torch.testing.assert_close(g, ref[name], atol=1e-5, rtol=1e-4, msg=name)
