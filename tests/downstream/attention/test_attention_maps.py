"""downstream.attention algorithms: DINO's mass threshold, the Masker's hidden patches, per-head / SimPool maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from downstream.attention import hidden_patches, image_maps, mass_threshold
from pretrain.masking import mask_counts
from pretrain.models import create_model


def test_mass_threshold_by_hand():
    maps = torch.tensor([[0.1, 0.4], [0.3, 0.2]])  # ascending 0.1 0.2 0.3 0.4: cumsum > 0.4 from 0.3 on
    assert mass_threshold(maps).tolist() == [[False, True], [True, False]]
    assert mass_threshold(maps, mass=1.0).all()


def test_mass_threshold_keeps_at_least_the_mass_and_no_more_than_needed():
    maps = torch.rand(6, 7, 9, generator=torch.Generator().manual_seed(0)) ** 3
    kept = mass_threshold(maps, 0.6)
    for m, k in zip(maps, kept):
        share = m[k].sum() / m.sum()
        assert share >= 0.6
        assert share - m[k].min() / m.sum() < 0.6  # dropping the weakest kept patch loses the 60%


def test_hidden_patches_follow_the_scores_and_the_seed():
    grid, ratio = (4, 5), 0.4
    scores = torch.arange(20, dtype=torch.float32).view(1, 20)  # patch i scores i
    hidden = hidden_patches(scores, grid, ratio, seed=3)
    count = int(mask_counts(torch.tensor([ratio]), 20)[0])
    assert all(int(h.sum()) == count for h in hidden.values())
    assert hidden["attmask_high"].flatten().nonzero().flatten().tolist() == list(range(20 - count, 20))
    assert hidden["attmask_low"].flatten().nonzero().flatten().tolist() == list(range(count))
    again = hidden_patches(scores, grid, ratio, seed=3)
    assert all(torch.equal(hidden[k], again[k]) for k in hidden)


def _photo(h: int, w: int) -> tuple[np.ndarray, torch.Tensor]:
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    return np.zeros((h, w, 3), np.uint8), x


def test_cls_model_with_registers_has_one_map_per_head():
    model = create_model("vit_pico", patch_size=8, img_size=32, num_registers=2).eval()
    m = image_maps(model, *_photo(40, 64))
    assert m.source == "cls" and m.maps.shape == (4, 5, 8) and m.kept.shape == (4, 5, 8)
    sums = m.maps.flatten(1).sum(1)
    assert (sums > 0).all() and (sums < 1).all()  # [CLS] and register columns are left out
    mean = model.forward_features(_photo(40, 64)[1], return_attention="cls").attention.view(5, 8)
    assert torch.allclose(m.maps.mean(0), mean, atol=1e-6)


def test_simpool_model_has_the_simpool_map():
    model = create_model("vit_pico", patch_size=8, img_size=32, pooling="simpool").eval()
    m = image_maps(model, *_photo(48, 32))
    assert m.source == "simpool" and m.maps.shape == (1, 6, 4)
    expected = model.forward_features(_photo(48, 32)[1], return_attention="cls").attention.view(6, 4)
    assert torch.equal(m.maps[0], expected) and m.maps.sum().item() == pytest.approx(1.0, abs=1e-5)
