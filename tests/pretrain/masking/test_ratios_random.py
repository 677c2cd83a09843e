"""Per-crop ratios and exact-count random masks."""

from __future__ import annotations

import pytest
import torch

from pretrain.masking import mask_counts, random_masks, sample_mask_ratios
from pretrain.masking.ratios import ranks


def test_ratios_per_crop_with_unmasked_share():
    ratios = sample_mask_ratios(20000, prob=0.5, ratio_range=(0.1, 0.5), generator=torch.Generator().manual_seed(0))
    masked = ratios > 0
    assert ratios.shape == (20000,) and ratios.dtype == torch.float32
    assert 0.48 < masked.float().mean() < 0.52
    assert ratios[masked].min() >= 0.1 and ratios[masked].max() <= 0.5
    assert ratios[masked].std() > 0.1  # per crop, not one ratio for the batch
    assert (sample_mask_ratios(100, prob=0.0) == 0).all()
    assert (sample_mask_ratios(100, prob=1.0) > 0).all()


def test_ratio_argument_errors():
    with pytest.raises(ValueError, match="prob"):
        sample_mask_ratios(4, prob=1.5)
    with pytest.raises(ValueError, match="ratio_range"):
        sample_mask_ratios(4, ratio_range=(0.5, 0.1))


def test_ranks_are_permutations_and_stable():
    keys = torch.tensor([[3.0, 1.0, 2.0, 1.0]])
    assert ranks(keys).tolist() == [[3, 0, 2, 1]]
    assert ranks(keys, descending=True).tolist() == [[0, 2, 1, 3]]


@pytest.mark.parametrize("grid", [(14, 14), (7, 5), (1, 1), (3, 11)])
def test_random_masks_exact_count_per_row(grid):
    n = grid[0] * grid[1]
    ratios = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.37, 1.0, 0.0, 0.9])
    masks = random_masks(ratios, grid, generator=torch.Generator().manual_seed(1))
    assert masks.shape == (8, n) and masks.dtype == torch.bool
    # int(r * N) (floor) as AttMask's / iBOT's code; round() before issue 11
    expected = [int(float(r) * n + 1e-4) for r in ratios.tolist()]
    assert masks.sum(1).tolist() == expected
    assert mask_counts(ratios, n).tolist() == expected
    assert not masks[0].any() and not masks[6].any()  # unmasked crops


def test_random_masks_deterministic_and_uniform():
    ratios = torch.full((4000,), 0.25)
    a = random_masks(ratios, (4, 4), generator=torch.Generator().manual_seed(5))
    b = random_masks(ratios, (4, 4), generator=torch.Generator().manual_seed(5))
    c = random_masks(ratios, (4, 4), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    freq = a.float().mean(0)  # every patch masked with probability 4/16
    assert (freq - 0.25).abs().max() < 0.04


def test_counts_are_floors_as_the_references():
    # AttMask / iBOT: int(r * N). r = 0.3, N = 196: 58.8 -> 58 (round() gave 59)
    assert mask_counts(torch.tensor([0.3]), 196).tolist() == [58]
    assert random_masks(torch.tensor([0.3]), (14, 14)).sum().item() == 58
    # float32(0.7) * 100 = 69.9999988: the tolerance keeps the intended 70; 0.5 * 35 = 17.5 -> 17
    assert mask_counts(torch.tensor([0.7, 0.5, 0.0, 1.0]), 100).tolist() == [70, 50, 0, 100]
    assert mask_counts(torch.tensor([0.5, 0.99]), 35).tolist() == [17, 34]
