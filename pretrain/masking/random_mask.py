"""Uniformly random patch masks with an exact per-crop count."""

from __future__ import annotations

import torch
from torch import Tensor

from pretrain.masking.ratios import check_grid, mask_counts, ranks


def random_masks(
    ratios: Tensor, grid_hw: tuple[int, int], generator: torch.Generator | None = None
) -> Tensor:
    """Mask exactly ``int(r_b * N)`` (floor) uniformly chosen patches in every row ``b``.

    (iBOT's "rand" prediction shape, Zhou et al., ICLR 2022, which also masks ``int(r * N)``.) Each row ranks i.i.d. uniform
    keys and masks the patches ranked below its own count, so rows get different counts in
    one vectorised pass on the ratios' device.

    Args:
        ratios: ``(B,)`` mask ratios, 0 for an unmasked crop.
        grid_hw: patch grid ``(H, W)``; ``N = H * W``.
        generator: optional RNG on the ratios' device.

    Returns:
        ``(B, N)`` bool, True = masked, row-major over the grid.
    """
    height, width = check_grid(grid_hw)
    num_patches = height * width
    keys = torch.rand(ratios.shape[0], num_patches, generator=generator, device=ratios.device)
    return ranks(keys) < mask_counts(ratios, num_patches)[:, None]
