"""Absolute position embeddings: fixed 2D sin-cos and resampling of learned tables.

The 2D sin-cos table follows MAE (He et al., "Masked Autoencoders Are Scalable Vision
Learners", 2022): half of the channels encode the column, half the row, each with the 1D
transformer encoding of Vaswani et al. (temperature 10000).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = [
    "POS_EMBED_INTERP",
    "infer_prefix_and_grid",
    "resample_patch_pos_embed",
    "resample_pos_embed",
    "sincos_2d",
]

POS_EMBED_INTERP = ("dino", "exact")


def _sincos_1d(dim: int, positions: torch.Tensor, temperature: float) -> torch.Tensor:
    """(L,) positions -> (L, dim) with [sin | cos] halves."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / temperature**omega
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(
    embed_dim: int,
    grid_hw: tuple[int, int],
    num_prefix: int = 0,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding (MAE style).

    Args:
        embed_dim: D, must be divisible by 4 (sin/cos for each of the two axes).
        grid_hw: patch grid (h, w); tokens are in row-major order.
        num_prefix: number of leading all-zero rows (e.g. 1 for the [CLS] token, as in MAE).
        temperature: frequency base.
        device: where to build the table.

    Returns:
        (1, num_prefix + h * w, D) float32 tensor.
    """
    if embed_dim % 4 != 0:
        raise ValueError(f"sin-cos position embedding needs embed_dim divisible by 4, got {embed_dim}")
    h, w = grid_hw
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    emb = torch.cat(
        [
            _sincos_1d(embed_dim // 2, xs.reshape(-1), temperature),
            _sincos_1d(embed_dim // 2, ys.reshape(-1), temperature),
        ],
        dim=1,
    )
    emb = torch.cat([emb.new_zeros(num_prefix, embed_dim), emb], dim=0)
    return emb.to(torch.float32).unsqueeze(0)


def resample_patch_pos_embed(
    patch_pos: torch.Tensor, old_hw: tuple[int, int], new_hw: tuple[int, int], mode: str = "dino"
) -> torch.Tensor:
    """Bicubic resampling of the patch part of a position table.

    ``mode="dino"`` is DINO's / iBOT's ``interpolate_pos_encoding`` (Caron et al., 2021):
    ``F.interpolate(table, scale_factor=((h + 0.1) / old_h, (w + 0.1) / old_w), mode="bicubic")``
    (``align_corners=False``); the +0.1 only makes the output size floor to (h, w), but the
    scale factor, not the size ratio, sets where the samples fall. ``mode="exact"`` resizes to
    exactly (h, w) (``size=``: samples at the size ratio; our behaviour before issue 11). Both
    return the table unchanged when the grid does not change (DINO's early return).

    Args:
        patch_pos: (1, old_h * old_w, D) table of the patch positions only (no prefix rows).
        old_hw: grid the table was made for.
        new_hw: grid wanted.
        mode: ``"dino"`` or ``"exact"``.

    Returns:
        (1, new_h * new_w, D) in the dtype of ``patch_pos``.
    """
    if mode not in POS_EMBED_INTERP:
        raise ValueError(f"unknown position-embedding interpolation {mode!r}; choose one of {POS_EMBED_INTERP}")
    if tuple(old_hw) == tuple(new_hw):
        return patch_pos
    d = patch_pos.shape[-1]
    grid = patch_pos.reshape(1, old_hw[0], old_hw[1], d).permute(0, 3, 1, 2)
    # float32: bicubic is not implemented for half types on every backend
    if mode == "dino":
        scale = ((new_hw[0] + 0.1) / old_hw[0], (new_hw[1] + 0.1) / old_hw[1])
        grid = F.interpolate(grid.float(), scale_factor=scale, mode="bicubic", align_corners=False)
    else:
        grid = F.interpolate(grid.float(), size=tuple(new_hw), mode="bicubic", align_corners=False)
    if tuple(grid.shape[-2:]) != tuple(new_hw):
        raise RuntimeError(f"bicubic resampling gave grid {tuple(grid.shape[-2:])}, expected {tuple(new_hw)}")
    return grid.permute(0, 2, 3, 1).reshape(1, new_hw[0] * new_hw[1], d).to(patch_pos.dtype)


def resample_pos_embed(
    pos_embed: torch.Tensor, num_prefix: int, old_hw: tuple[int, int], new_hw: tuple[int, int], mode: str = "dino"
) -> torch.Tensor:
    """Resample a (1, num_prefix + old_h*old_w, D) table to a new grid, prefix rows kept as-is.

    ``mode``: see :func:`resample_patch_pos_embed`.
    """
    prefix, patches = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    return torch.cat([prefix, resample_patch_pos_embed(patches, old_hw, new_hw, mode)], dim=1)


def infer_prefix_and_grid(length: int, prefer_prefix: int = 1) -> tuple[int, tuple[int, int]]:
    """Guess (prefix rows, square grid) of a stored position table of ``length`` rows.

    A table from a checkpoint carries no explicit grid, so we look for L = P + g * g with a
    small P, trying ``prefer_prefix`` first (ambiguous lengths such as 1 + 0 are not an issue
    for real grids).

    Raises:
        ValueError: if no P in 0..8 makes the remainder a perfect square.
    """
    candidates = [prefer_prefix] + [p for p in range(9) if p != prefer_prefix]
    for p in candidates:
        g = round((length - p) ** 0.5) if length > p else 0
        if g > 0 and g * g == length - p:
            return p, (g, g)
    raise ValueError(
        f"cannot infer the patch grid of a position table with {length} rows: expected "
        "prefix + g*g rows for a square grid g; resample it yourself for non-square grids"
    )
