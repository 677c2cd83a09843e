"""DINOHead: architecture, weight norm, clean state dict."""

from __future__ import annotations

import copy

import torch

from pretrain.models import DINOHead


def test_shapes_and_layers():
    head = DINOHead(32, 100, hidden_dim=64, bottleneck_dim=16)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 64), (64, 64), (64, 16)]
    assert sum(isinstance(m, torch.nn.GELU) for m in head.mlp) == 2
    assert head(torch.randn(4, 32)).shape == (4, 100)
    assert head(torch.randn(2, 5, 32)).shape == (2, 5, 100)


def test_norm_last_layer_fixes_g_to_one():
    head = DINOHead(32, 100, hidden_dim=64, bottleneck_dim=16, norm_last_layer=True)
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    w = head.last_layer.weight
    torch.testing.assert_close(w.norm(dim=1), torch.ones(100))
    # output = cosine similarity of the normalised bottleneck with unit prototypes
    assert head(torch.randn(8, 32)).abs().max() <= 1 + 1e-5
    free = DINOHead(32, 100, hidden_dim=64, bottleneck_dim=16, norm_last_layer=False)
    assert free.last_layer.parametrizations.weight.original0.requires_grad


def test_state_dict_is_clean_and_round_trips():
    head = DINOHead(32, 50, hidden_dim=64, bottleneck_dim=16)
    sd = head.state_dict()
    assert "last_layer.weight" not in sd  # only the parametrization's tensors, no stale copy
    assert {k for k in sd if k.startswith("last_layer")} == {
        "last_layer.parametrizations.weight.original0", "last_layer.parametrizations.weight.original1"}
    other = DINOHead(32, 50, hidden_dim=64, bottleneck_dim=16)
    other.load_state_dict(sd, strict=True)
    x = torch.randn(3, 32)
    torch.testing.assert_close(other(x), head(x))
    torch.testing.assert_close(copy.deepcopy(head)(x), head(x))


def test_loads_legacy_weight_g_weight_v_checkpoints():
    head = DINOHead(32, 50, hidden_dim=64, bottleneck_dim=16)
    sd = head.state_dict()
    legacy = {k: v for k, v in sd.items() if not k.startswith("last_layer")}
    legacy["last_layer.weight_g"] = sd["last_layer.parametrizations.weight.original0"]
    legacy["last_layer.weight_v"] = sd["last_layer.parametrizations.weight.original1"] * 3.0
    other = DINOHead(32, 50, hidden_dim=64, bottleneck_dim=16)
    other.load_state_dict(legacy, strict=True)
    x = torch.randn(3, 32)
    torch.testing.assert_close(other(x), head(x))  # v scaled by 3 changes nothing with g fixed


def test_truncated_normal_init():
    head = DINOHead(384, 10, hidden_dim=2048)
    w = head.mlp[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and w.abs().max() < 0.2
    assert torch.all(head.mlp[0].bias == 0)
