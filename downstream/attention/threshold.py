"""DINO's thresholded attention: the smallest set of patches holding a given share of the mass.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (ICCV 2021), Fig. 3:
sort a head's map ascending, normalise it to sum 1, and keep the patches where the cumulative
sum exceeds ``1 - mass`` (``mass = 0.6``: at least 60% of the attention is kept).
"""

from __future__ import annotations

import torch

__all__ = ["mass_threshold"]


def mass_threshold(maps: torch.Tensor, mass: float = 0.6) -> torch.Tensor:
    """Keep the largest values holding at least ``mass`` of each map's total.

    Args:
        maps: (..., gh, gw) non-negative maps (e.g. (h, gh, gw): one per head).
        mass: share of each map's sum to keep, in (0, 1].

    Returns:
        (..., gh, gw) bool, True = kept.
    """
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    flat = maps.flatten(-2).double()
    values, order = torch.sort(flat, dim=-1)  # ascending
    share = values / values.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    keep_sorted = torch.cumsum(share, dim=-1) > 1.0 - mass
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to patch order
    return keep.view(maps.shape)
