"""The Masker built from a strategy name."""

from __future__ import annotations

import pytest
import torch

from pretrain.masking import STRATEGIES, build_masker


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_gives_bool_masks_with_unmasked_crops(strategy):
    masker = build_masker(strategy, prob=0.5, ratio_range=(0.1, 0.5))
    assert masker.needs_attention == strategy.startswith("attmask")
    scores = torch.rand(64, 35) if masker.needs_attention else None
    masks = masker(64, (7, 5), scores=scores, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (64, 35) and masks.dtype == torch.bool
    counts = masks.sum(1)
    if strategy == "none":
        assert counts.sum() == 0
    else:
        empty = (counts == 0).float().mean()
        assert 0.3 < empty < 0.7  # about half the crops unmasked
        assert counts.max() <= int(0.5 * 35)


def test_attmask_strategy_uses_scores():
    masker = build_masker("attmask_high", prob=1.0, ratio_range=(0.2, 0.2))
    scores = torch.arange(20.0).repeat(3, 1)
    masks = masker(3, (4, 5), scores=scores)
    assert masks[:, 16:].all() and not masks[:, :16].any()


def test_device_follows_scores_and_ratios_are_per_crop():
    masker = build_masker("random", prob=1.0, ratio_range=(0.1, 0.5))
    masks = masker(256, (14, 14), generator=torch.Generator().manual_seed(0))
    assert masks.device.type == "cpu"
    assert masks.sum(1).unique().numel() > 20


def test_errors_list_valid_choices():
    with pytest.raises(ValueError, match="attmask_high, attmask_hint, attmask_low"):
        build_masker("attmask")
    with pytest.raises(ValueError, match="needs teacher attention"):
        build_masker("attmask_hint")(4, (2, 2))
    with pytest.raises(ValueError, match="prob"):
        build_masker("random", prob=2.0)


@pytest.mark.parametrize("strategy", ["random", "block", "attmask_high", "attmask_hint"])
@pytest.mark.parametrize(("ratio_range", "grid", "bound"), [((0.1, 0.5), (4, 4), 8), ((0.1, 0.5), (14, 14), 98),
                                                            ((0.3, 0.3), (10, 10), 30), ((0.2, 0.7), (5, 7), 24)])
def test_max_count_is_int_high_n_and_bounds_every_draw(strategy, ratio_range, grid, bound):
    masker = build_masker(strategy, prob=1.0, ratio_range=ratio_range)
    n = grid[0] * grid[1]
    assert masker.max_count(n) == bound  # floor(high * N), e.g. 0.7 * 35 = 24.5 -> 24
    gen = torch.Generator().manual_seed(0)
    masks = masker(4000, grid, scores=torch.rand(4000, n, generator=gen), generator=gen)
    assert int(masks.sum(1).max()) <= bound
    assert build_masker("none").max_count(n) == 0
