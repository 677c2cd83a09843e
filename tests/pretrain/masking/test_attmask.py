"""AttMask High / Low / Hint on known score maps."""

from __future__ import annotations

import pytest
import torch

from pretrain.masking import attmask


def _scores(batch: int, n: int) -> torch.Tensor:
    # Patch i has score i: the most attended patches are the last ones.
    return torch.arange(n, dtype=torch.float32).repeat(batch, 1)


def test_high_and_low_pick_top_and_bottom():
    n = 20
    ratios = torch.tensor([0.25, 0.5, 0.0])
    high = attmask(_scores(3, n), ratios, "high")
    low = attmask(_scores(3, n), ratios, "low")
    assert high[0].nonzero().flatten().tolist() == list(range(15, 20))
    assert high[1].nonzero().flatten().tolist() == list(range(10, 20))
    assert low[0].nonzero().flatten().tolist() == list(range(5))
    assert low[1].nonzero().flatten().tolist() == list(range(10))
    assert not high[2].any() and not low[2].any()


def test_high_follows_each_rows_own_scores():
    scores = torch.rand(6, 49, generator=torch.Generator().manual_seed(0))
    ratios = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.33])
    masks = attmask(scores, ratios, "high")
    for row, r in enumerate(ratios.tolist()):
        k = int(r * 49 + 1e-4)  # floor, as AttMask's code (round() before issue 11)
        assert masks[row].sum() == k
        assert set(masks[row].nonzero().flatten().tolist()) == set(scores[row].topk(k).indices.tolist())


@pytest.mark.parametrize("n", [196, 35, 100])
def test_hint_reveals_exact_count_from_top_pool(n):
    ratios = torch.tensor([0.5, 0.3, 0.1, 0.0, 0.45])
    masks = attmask(_scores(5, n), ratios, "hint", show_max=0.1, generator=torch.Generator().manual_seed(0))
    high = attmask(_scores(5, n), ratios, "high")
    pool = torch.zeros(n, dtype=torch.bool)
    pool[n - int(0.1 * n):] = True  # the top 10% of all patches by score
    for row, r in enumerate(ratios.tolist()):
        n_show = int(0.1 * r * n + 1e-4)  # the documented floor tolerance
        revealed = high[row] & ~masks[row]
        assert not (masks[row] & ~high[row]).any()  # hint only unmasks
        assert revealed.sum() == n_show
        assert not (revealed & ~pool).any()  # hints come from the top pool only
        assert masks[row].sum() == int(r * n + 1e-4) - n_show  # floor (round() before issue 11)


def test_hint_exact_integer_boundary():
    # 0.1 * 0.5 * 100 = 5 exactly: float32 rounding must not turn it into 4.
    masks = attmask(_scores(1, 100), torch.tensor([0.5]), "hint", show_max=0.1)
    assert masks.sum() == 50 - 5


def test_hint_choice_is_random_across_seeds_and_deterministic_per_seed():
    ratios = torch.full((1,), 0.5)
    runs = [
        attmask(_scores(1, 196), ratios, "hint", generator=torch.Generator().manual_seed(s))
        for s in range(8)
    ]
    again = attmask(_scores(1, 196), ratios, "hint", generator=torch.Generator().manual_seed(0))
    assert torch.equal(runs[0], again)
    assert len({tuple(m.flatten().tolist()) for m in runs}) > 4


def test_ties_are_deterministic_and_counts_exact():
    ratios = torch.tensor([0.3, 0.3])
    masks = attmask(torch.ones(2, 10), ratios, "high")
    assert masks.sum(1).tolist() == [3, 3]
    assert torch.equal(masks[0], masks[1])


def test_edge_grid_and_errors():
    assert attmask(torch.rand(2, 1), torch.tensor([1.0, 0.4]), "hint").tolist() == [[True], [False]]
    with pytest.raises(ValueError, match="valid: high, low, hint"):
        attmask(torch.rand(2, 4), torch.rand(2), "middle")
    with pytest.raises(ValueError, match="scores must be"):
        attmask(torch.rand(2, 4), torch.rand(3), "high")


def test_high_masks_floor_of_ratio_times_patches():
    # AttMask's code: int(r * N); r = 0.3, N = 196 -> 58, the top 58 scores
    masks = attmask(_scores(1, 196), torch.tensor([0.3]), "high")
    assert masks.sum().item() == 58
    assert masks[0].nonzero().flatten().tolist() == list(range(196 - 58, 196))
