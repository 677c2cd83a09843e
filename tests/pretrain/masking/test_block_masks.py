"""Block-wise (BEiT/iBOT) masks: counts, shape of the blocks, any grid, determinism."""

from __future__ import annotations

import math
import random

import pytest
import torch

from pretrain.masking import block_masks, default_min_area, mask_counts, random_masks
from pretrain.masking.block import _candidate_blocks


def _components(mask: torch.Tensor) -> list[list[tuple[int, int]]]:
    """4-connected components of a (H, W) bool grid, by flood fill."""
    h, w = mask.shape
    grid = mask.tolist()
    seen, comps = set(), []
    for i in range(h):
        for j in range(w):
            if grid[i][j] and (i, j) not in seen:
                stack, comp = [(i, j)], []
                seen.add((i, j))
                while stack:
                    y, x = stack.pop()
                    comp.append((y, x))
                    for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                        if 0 <= ny < h and 0 <= nx < w and grid[ny][nx] and (ny, nx) not in seen:
                            seen.add((ny, nx))
                            stack.append((ny, nx))
                comps.append(comp)
    return comps


def _bbox_fill(comp: list[tuple[int, int]]) -> float:
    ys, xs = [p[0] for p in comp], [p[1] for p in comp]
    return len(comp) / ((max(ys) - min(ys) + 1) * (max(xs) - min(xs) + 1))


def test_min_area_follows_ibot_and_scales_with_grid():
    assert default_min_area((14, 14)) == 16
    assert default_min_area((28, 28)) == 81
    assert default_min_area((7, 5)) == 1
    assert default_min_area((1, 1)) == 1


@pytest.mark.parametrize("grid", [(14, 14), (28, 28), (7, 5), (6, 9)])
def test_counts_never_exceed_target_and_shortfall_is_small(grid):
    # BEiT never overshoots (a block must add <= remaining patches) but may stop short when 10
    # tries find no fitting block; in practice the shortfall is below the minimum block area.
    n = grid[0] * grid[1]
    ratios = torch.linspace(0.1, 0.5, 128)
    masks = block_masks(ratios, grid, generator=torch.Generator().manual_seed(0))
    target = mask_counts(ratios, n)
    count = masks.sum(1)
    assert masks.shape == (128, n)
    assert (count <= target).all()
    shortfall = (target - count).float()
    assert shortfall.max() < default_min_area(grid) + 2
    assert shortfall.mean() < 0.1 * target.float().mean()


def test_unmasked_crops_stay_empty_and_tiny_grids_work():
    ratios = torch.tensor([0.0, 0.5, 1.0, 0.0])
    masks = block_masks(ratios, (14, 14))
    assert not masks[0].any() and not masks[3].any()
    assert 0.5 * 196 < masks[2].sum() <= 196  # rectangles rarely tile the whole grid (BEiT too)
    # BEiT/iBOT need h < H and w < W: a 1x1 or 1-row grid gets no block at all ...
    assert not block_masks(torch.tensor([1.0, 0.6]), (1, 1)).any()
    assert not block_masks(torch.tensor([0.5] * 8), (1, 8)).any()
    # ... unless full_span=True lets a block span the whole height / width
    one = block_masks(torch.tensor([1.0, 0.0, 0.6]), (1, 1), full_span=True)
    assert one.tolist() == [[True], [False], [False]]  # int(0.6 * 1) = 0
    row = block_masks(torch.tensor([0.5] * 8), (1, 8), full_span=True)
    assert (row.sum(1) == 4).all()


@pytest.mark.parametrize("grid", [(14, 14), (4, 4), (3, 7)])
def test_blocks_stay_strictly_inside_the_grid_extent(grid):
    # iBOT's loader.py / BEiT's masking_generator.py: `if w < W and h < H`. Draw many candidate
    # blocks with a large remaining area so that many of them would span a whole side.
    height, width = grid
    remaining = torch.full((400,), float(height * width))
    log_aspect = (math.log(0.3), math.log(1 / 0.3))
    gen = torch.Generator().manual_seed(0)
    for full_span in (False, True):
        blocks = _candidate_blocks(remaining, grid, 1, log_aspect, 10, gen, full_span).flatten(0, 1)
        blocks = blocks[blocks.flatten(1).any(1)]
        tall = blocks.any(dim=2).sum(1)  # rows touched: the block height
        wide = blocks.any(dim=1).sum(1)
        assert len(blocks) > 1000
        if full_span:
            assert (tall == height).any() and (wide == width).any()
        else:
            assert tall.max() == height - 1 and wide.max() == width - 1
    # whole masks with one block each (max_blocks=1): that rectangle never spans a whole side
    ratios = torch.rand(300, generator=gen) * 0.8 + 0.1
    masks = block_masks(ratios, grid, generator=gen, max_blocks=1).view(-1, height, width)
    assert masks.flatten(1).any(1).sum() > 150
    assert masks.any(dim=2).sum(1).max() < height and masks.any(dim=1).sum(1).max() < width


def test_blocks_are_rectangles():
    # A target equal to the minimum area is reached by one rectangle whenever it is hit exactly
    # (a second block could only add patches by overlapping the first).
    ratios = torch.full((100,), 16 / 196)
    masks = block_masks(ratios, (14, 14), generator=torch.Generator().manual_seed(1)).view(-1, 14, 14)
    single = [m for m in masks if len(_components(m)) == 1]
    assert len(single) > 50
    fills = [_bbox_fill(_components(m)[0]) for m in single]
    assert sum(f == 1.0 for f in fills) > 0.8 * len(fills)


def test_blocky_compared_with_random():
    ratios = torch.full((64,), 0.4)
    blocks = block_masks(ratios, (14, 14), generator=torch.Generator().manual_seed(2)).view(-1, 14, 14)
    rand = random_masks(ratios, (14, 14), generator=torch.Generator().manual_seed(2)).view(-1, 14, 14)
    block_comps = sum(len(_components(m)) for m in blocks) / 64
    rand_comps = sum(len(_components(m)) for m in rand) / 64
    assert block_comps < 4 < rand_comps
    fills = [_bbox_fill(c) for m in blocks for c in _components(m)]
    assert sum(fills) / len(fills) > 0.7


def test_deterministic_with_seeded_generator():
    ratios = torch.rand(32, generator=torch.Generator().manual_seed(0)) * 0.5
    a = block_masks(ratios, (7, 5), generator=torch.Generator().manual_seed(9))
    b = block_masks(ratios, (7, 5), generator=torch.Generator().manual_seed(9))
    c = block_masks(ratios, (7, 5), generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_arguments():
    with pytest.raises(ValueError, match="grid_hw"):
        block_masks(torch.rand(2), (0, 4))
    with pytest.raises(ValueError, match="aspect"):
        block_masks(torch.rand(2), (4, 4), aspect_range=(2.0, 1.0))


def _sequential_beit(height: int, width: int, high: float, rng) -> torch.Tensor:
    """Image-by-image iBOT block loop (python random, float target ``high = r * N``), as iBOT's
    ``ImageFolderMask.__getitem__`` restated."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    low = default_min_area((height, width))
    count = 0
    while count < high:
        remaining, added = high - count, 0
        for _ in range(10):
            area = rng.uniform(low, remaining)
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
            h, w = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if w < width and h < height:
                top, left = rng.randint(0, height - h), rng.randint(0, width - w)
                new = h * w - int(mask[top:top + h, left:left + w].sum())
                if 0 < new <= remaining:
                    mask[top:top + h, left:left + w] = True
                    added = new
                    break
        if added == 0:
            break
        count += added
    return mask


def test_same_statistics_as_sequential_reference():
    rng = random.Random(0)
    ratios = torch.rand(400, generator=torch.Generator().manual_seed(3)) * 0.4 + 0.1
    target = mask_counts(ratios, 196)
    ours = block_masks(ratios, (14, 14), generator=torch.Generator().manual_seed(4)).view(-1, 14, 14)
    ref = torch.stack([_sequential_beit(14, 14, float(r) * 196, rng) for r in ratios.double()])
    assert (ref.flatten(1).sum(1) <= target).all()  # the float bound r * N is floor(r * N) here
    short_ours = (target - ours.flatten(1).sum(1)).float().mean()
    short_ref = (target - ref.flatten(1).sum(1)).float().mean()
    assert abs(short_ours - short_ref) < 0.5  # both about 0.7 patches short on average
    comps_ours = sum(len(_components(m)) for m in ours[:150]) / 150
    comps_ref = sum(len(_components(m)) for m in ref[:150]) / 150
    assert abs(comps_ours - comps_ref) < 0.4
