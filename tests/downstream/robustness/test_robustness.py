"""Robustness: the IN-1k -> IN-9 mapping and head, hiding the most-attended patches."""

from __future__ import annotations

import json

import pytest
import torch

from downstream.robustness.data import load_in_to_in9, map_to_in9
from downstream.robustness.masked import hide_patches, top_attended_mask
from pretrain.models import create_model


def test_in_to_in9_mapping(tmp_path):
    mapping = {str(i): -1 for i in range(1000)}
    mapping.update({"151": 0, "7": 1, "300": 8})
    (tmp_path / "in_to_in9.json").write_text(json.dumps(mapping))
    table = load_in_to_in9(tmp_path / "in_to_in9.json")
    logits = torch.zeros(3, 1000)
    logits[0, 151] = logits[1, 300] = logits[2, 999] = 1.0
    assert map_to_in9(logits, table).tolist() == [0, 8, -1]  # class 999 is outside IN-9: always wrong
    (tmp_path / "bad.json").write_text('{"5": 9}')
    with pytest.raises(ValueError, match="entry '5': 9"):
        load_in_to_in9(tmp_path / "bad.json")


def test_hide_patches_and_top_attended():
    images = torch.full((1, 3, 4, 6), 200, dtype=torch.uint8)
    mask = torch.tensor([[[False, True, False], [False, False, True]]])  # patch size 2 on a 2x3 grid
    out = hide_patches(images, mask, 2)
    expected = torch.full((4, 6), 200, dtype=torch.uint8)
    expected[0:2, 2:4] = 0
    expected[2:4, 4:6] = 0
    assert torch.equal(out[0, 0], expected) and torch.equal(out[0, 2], expected)
    torch.manual_seed(0)
    model = create_model("vit_pico", img_size=28, patch_size=7).eval()
    x = torch.randn(2, 3, 28, 28)
    m = top_attended_mask(model, x, 0.25)
    att = model.forward_features(x, return_attention="cls").attention  # (2, 16)
    assert m.shape == (2, 4, 4) and m.flatten(1).sum(1).tolist() == [4, 4]
    kept_min = torch.where(m.flatten(1), att, torch.inf).min(1).values
    dropped_max = torch.where(m.flatten(1), -torch.inf, att).max(1).values
    assert (kept_min >= dropped_max).all()  # the hidden patches are the 4 most attended ones


def test_in1k_head_classifier(tmp_path):
    from downstream.robustness.cli import RobustnessConfig, _classifier

    w = torch.zeros(1000, 2)
    w[151, 0] = w[999, 1] = 1.0  # feature 0 -> ImageNet 151 (IN-9 class 0); feature 1 -> 999 (no IN-9 class)
    torch.save({"head.weight": w, "head.bias": torch.zeros(1000)}, tmp_path / "head.pt")
    mapping = {str(i): -1 for i in range(1000)}
    mapping["151"] = 0
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    cfg = RobustnessConfig(head="in1k", in1k_head=str(tmp_path / "head.pt"), in_to_in9=str(tmp_path / "map.json"))
    predict, info = _classifier(cfg, None, None, "cpu")
    assert predict(torch.tensor([[2.0, 0.0], [0.0, 3.0]])).tolist() == [0, -1]
    assert info["head"] == "in1k + in_to_in9"
