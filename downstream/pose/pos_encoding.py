"""2D positional encodings of the pose head: DETR's fixed sine encoding or a learned row/column table.

Carion et al., "End-to-End Object Detection with Transformers" (DETR, 2020): for a grid of
H x W tokens, 128 features per axis, ``PE(pos, 2i) = sin(pos / T^{2i/128})``,
``PE(pos, 2i+1) = cos(pos / T^{2i/128})`` with pos = 1..H (rows) and 1..W (columns), T = 10000,
not normalised; channels are [row features, column features]. Lee et al. (NeurIPS 2024) replace
MS-Transformer's learned encoding by this fixed one.
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("learned", "sine")


def sine_2d(h: int, w: int, num_feats: int = 128, temperature: float = 10000.0) -> torch.Tensor:
    """DETR sine encoding, (H * W, 2 * num_feats), row-major tokens, channels [y features, x features]."""
    y = torch.arange(1, h + 1, dtype=torch.float64)[:, None].expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float64)[None, :].expand(h, w)
    dim_t = temperature ** (2 * (torch.arange(num_feats, dtype=torch.float64) // 2) / num_feats)

    def encode(v: torch.Tensor) -> torch.Tensor:
        p = v[..., None] / dim_t  # (H, W, F)
        return torch.stack([p[..., 0::2].sin(), p[..., 1::2].cos()], dim=-1).flatten(-2)  # interleaved

    return torch.cat([encode(y), encode(x)], dim=-1).reshape(h * w, 2 * num_feats).float()


class PositionEncoding(nn.Module):
    """Positional encoding of an H x W token grid, (H * W, dim).

    Args:
        kind: ``learned`` (MS-Transformer / DETR row + column embedding tables, dim/2 each) or
            ``sine`` (fixed, :func:`sine_2d`).
        grid_hw: (H, W) of the token grid.
        dim: Model width (even).
    """

    def __init__(self, kind: str, grid_hw: tuple[int, int], dim: int = 256) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"head.pos_encoding must be one of {KINDS}, got {kind!r}")
        if dim % 2:
            raise ValueError(f"the model width must be even for a 2D positional encoding, got {dim}")
        self.kind, self.grid_hw = kind, tuple(grid_hw)
        h, w = self.grid_hw
        if kind == "sine":
            self.register_buffer("table", sine_2d(h, w, dim // 2), persistent=False)
        else:
            self.row = nn.Parameter(torch.empty(h, dim // 2).uniform_())  # DETR: nn.init.uniform_
            self.col = nn.Parameter(torch.empty(w, dim // 2).uniform_())

    def forward(self) -> torch.Tensor:
        if self.kind == "sine":
            return self.table
        h, w = self.grid_hw
        return torch.cat([self.row[:, None].expand(h, w, -1), self.col[None, :].expand(h, w, -1)], -1).flatten(0, 1)
