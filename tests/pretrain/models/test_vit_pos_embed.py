"""2D sin-cos tables and position-table resampling helpers."""

from __future__ import annotations

import pytest
import torch

from pretrain.models.pos_embed import (
    infer_prefix_and_grid,
    resample_pos_embed,
    sincos_2d,
)


def test_sincos_layout():
    table = sincos_2d(16, (3, 5), num_prefix=1)
    assert table.shape == (1, 16, 16) and torch.all(table[0, 0] == 0)
    grid = table[0, 1:].reshape(3, 5, 16)
    # first half encodes the column, second half the row
    torch.testing.assert_close(grid[0, :, :8], grid[2, :, :8])
    torch.testing.assert_close(grid[:, 0, 8:], grid[:, 4, 8:])
    assert not torch.allclose(grid[0, 0], grid[0, 1])
    torch.testing.assert_close(grid[0, 0, :8], torch.tensor([0.0] * 4 + [1.0] * 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(10, (2, 2))


def test_resample_keeps_prefix_and_identity_on_same_grid():
    table = torch.randn(1, 2 + 16, 8)
    torch.testing.assert_close(resample_pos_embed(table, 2, (4, 4), (4, 4)), table)
    out = resample_pos_embed(table, 2, (4, 4), (2, 6))
    assert out.shape == (1, 2 + 12, 8)
    torch.testing.assert_close(out[:, :2], table[:, :2])


def test_infer_prefix_and_grid():
    assert infer_prefix_and_grid(197) == (1, (14, 14))
    assert infer_prefix_and_grid(196) == (0, (14, 14))
    assert infer_prefix_and_grid(196, prefer_prefix=0) == (0, (14, 14))
    assert infer_prefix_and_grid(1 + 4 + 196) == (5, (14, 14))
    with pytest.raises(ValueError, match="cannot infer"):
        infer_prefix_and_grid(1000)
