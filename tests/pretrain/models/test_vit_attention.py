"""Fused vs explicit attention and the cheap [CLS] attention row."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pretrain.models import create_model
from pretrain.models.attention import Attention, choose_attention_path, cls_attention


@pytest.mark.parametrize("key_variant", ["standard", "vanillak", "simplek"])
def test_fused_equals_explicit(key_variant):
    attn = Attention(64, num_heads=4, key_variant=key_variant, num_charts=2, token_counts=[10], attention="fused")
    x = torch.randn(3, 10, 64)
    fused, _ = attn(x)
    attn.attention = "explicit"
    explicit, _ = attn(x)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_full_map_is_a_softmax_and_used_for_the_output():
    attn = Attention(64, num_heads=4)
    x = torch.randn(2, 9, 64)
    out, full = attn(x, return_attention="full")
    assert full.shape == (2, 4, 9, 9)
    torch.testing.assert_close(full.sum(-1), torch.ones(2, 4, 9))
    torch.testing.assert_close(out, attn(x)[0], atol=1e-5, rtol=1e-5)


def test_cls_row_equals_row_zero_of_full_map():
    attn = Attention(64, num_heads=4)
    x = torch.randn(2, 9, 64)
    out_cls, row = attn(x, return_attention="cls")
    _, full = attn(x, return_attention="full")
    assert row.shape == (2, 4, 9)
    torch.testing.assert_close(row, full[:, :, 0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out_cls, attn(x)[0])


def test_cls_attention_never_builds_the_token_by_token_map():
    q = torch.randn(1, 2, 1000, 8)
    k = torch.randn(1, 2, 1000, 8)
    row = cls_attention(q, k, 8**-0.5)
    assert row.shape == (1, 2, 1000)
    ref = ((q[:, :, :1] @ k.transpose(-2, -1)) * 8**-0.5).softmax(-1)[:, :, 0]
    torch.testing.assert_close(row, ref)


@pytest.mark.parametrize("registers", [0, 2])
def test_model_cls_attention_is_patch_part_of_full_row_averaged_over_heads(registers):
    model = create_model("vit_pico", img_size=32, patch_size=8, num_registers=registers).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        cheap = model.forward_features(x, return_attention="cls")
        full = model.forward_features(x, return_attention="full")
    p = 1 + registers
    assert cheap.attention.shape == (3, 16)
    torch.testing.assert_close(cheap.attention, full.attention[:, :, 0, p:].mean(dim=1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(cheap.pooled, full.pooled, atol=1e-5, rtol=1e-5)


def test_explicit_model_matches_fused_model():
    model = create_model("vit_pico", img_size=32, patch_size=8, attention="fused").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused = model(x)
        for blk in model.blocks:
            blk.attn.attention = "explicit"
        explicit = model(x)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_bad_heads_raise():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Attention(10, num_heads=3)


@pytest.mark.parametrize("tokens", [5, 17, 50, 65])
def test_fused_explicit_and_auto_agree_forward_and_gradients(tokens):
    torch.manual_seed(0)
    attn = Attention(64, num_heads=4)
    x = torch.randn(2, tokens, 64)
    outs, grads = {}, {}
    for path in ("fused", "explicit", "auto"):
        attn.attention = path
        xi = x.clone().requires_grad_()
        out, _ = attn(xi)
        (out * torch.linspace(-1, 1, 64)).sum().backward()
        outs[path], grads[path] = out.detach(), (xi.grad, attn.qkv.weight.grad.clone())
        attn.zero_grad()
    for path in ("explicit", "auto"):
        torch.testing.assert_close(outs[path], outs["fused"], atol=1e-5, rtol=1e-5)
        for g, ref in zip(grads[path], grads["fused"]):
            torch.testing.assert_close(g, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="attention path"):
        Attention(64, num_heads=4, attention="flash")


def _recorded_table() -> list[tuple[str, int, float]]:
    """(dtype, T, explicit / fused) rows of benchmarks/attention_path/results/attention_path.md."""
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "attention_path" / "results" / "attention_path.md"
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[1] in ("float32", "bfloat16"):
            rows.append((cells[1], int(cells[4]), float(cells[8])))
    return rows


def test_auto_rule_picks_the_faster_path_of_the_recorded_table():
    rows = _recorded_table()
    assert len(rows) >= 20
    decided = 0
    for dtype, tokens, ratio in rows:
        choice = choose_attention_path("cpu", getattr(torch, dtype), tokens)
        if ratio < 0.85:  # explicit clearly faster (15% margin: the machine is shared and noisy)
            assert choice == "explicit", (dtype, tokens, ratio)
            decided += 1
        elif ratio > 1.15:
            assert choice == "fused", (dtype, tokens, ratio)
            decided += 1
    assert decided >= 0.75 * len(rows)
    assert choose_attention_path("cpu", torch.float32, 17) == "explicit"  # the demo's global crops
    assert choose_attention_path("cpu", torch.float32, 197) == "fused"
    assert choose_attention_path("cuda", torch.float32, 5) == "fused"  # CUDA: always SDPA
    assert choose_attention_path("cuda", torch.bfloat16, 197) == "fused"


@pytest.mark.parametrize("keys", [1, 2, 5, 8, 9, 17])
def test_short_softmax_equals_softmax_forward_and_backward(keys):
    from pretrain.models.attention import short_softmax

    torch.manual_seed(0)
    logits = (torch.randn(6, 4, 3, keys) * 30).requires_grad_()  # large logits: the max shift matters
    weight = torch.randn(6, 4, 3, keys)
    ref = logits.softmax(-1)
    (ref * weight).sum().backward()
    ref_grad, logits.grad = logits.grad, None
    got = short_softmax(logits)
    (got * weight).sum().backward()
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(logits.grad, ref_grad, atol=1e-6, rtol=1e-5)
