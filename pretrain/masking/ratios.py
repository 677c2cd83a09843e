"""Per-crop mask ratios and the rank helpers every mask generator shares.

All functions run on the tensors' device and never synchronise with the host, so they can
sit inside the training step (DESIGN.md section 7).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sampling_device(
    device: torch.device | str | None, generator: torch.Generator | None
) -> torch.device:
    """The device to draw on: ``device`` if given, else the generator's, else the CPU."""
    if device is not None:
        return torch.device(device)
    if generator is not None:
        return generator.device
    return torch.device("cpu")


def sample_mask_ratios(
    batch: int,
    prob: float = 0.5,
    ratio_range: tuple[float, float] = (0.1, 0.5),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw one mask ratio per crop (iBOT, Zhou et al., ICLR 2022, section 3.2 / AttMask).

    Each crop independently is masked with probability ``prob`` (its ratio then drawn from
    ``U(ratio_range)``) and left intact otherwise (ratio 0). The iBOT/AttMask references draw
    the masked/unmasked decision per crop but the AttMask code draws one ratio per batch; we
    draw it per crop so a batch mixes mask sizes, which is a deliberate fix.

    Args:
        batch: number of crops ``B``.
        prob: probability that a crop is masked at all (0.5 in iBOT and AttMask).
        ratio_range: ``(low, high)`` of the uniform ratio of masked patches.
        generator: optional RNG; it must live on ``device``.
        device: where to create the ratios (default: the generator's device, else CPU).

    Returns:
        ``(B,)`` float32 ratios in ``[0, 1]``; 0 marks an unmasked crop.
    """
    low, high = ratio_range
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"mask prob must be in [0, 1], got {prob}")
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"ratio_range must satisfy 0 <= low <= high <= 1, got {ratio_range}")
    u = torch.rand(2, batch, generator=generator, device=sampling_device(device, generator))
    ratios = low + (high - low) * u[1]
    return torch.where(u[0] < prob, ratios, torch.zeros_like(ratios))


# Counts are floors of products such as float32(0.7) * 100 = 69.9999988, which land a hair below
# the integer the user means; floor after adding this tolerance (far below 1 / N for any real N).
FLOOR_TOLERANCE = 1e-4


def mask_counts(ratios: Tensor, num_patches: int) -> Tensor:
    """``int(r * N)`` (floor, as AttMask's and iBOT's code) per row as int64 ``(B,)``, in ``[0, N]``.

    r = 0.3, N = 196 gives 58 (``round`` would give 59). The floor is taken after adding
    :data:`FLOOR_TOLERANCE`, so float32 ratios such as 0.7 count as 70 of 100 patches.
    """
    if ratios.ndim != 1:
        raise ValueError(f"ratios must be 1-D (B,), got shape {tuple(ratios.shape)}")
    counts = torch.floor(exact_dtype(ratios) * num_patches + FLOOR_TOLERANCE)
    return counts.long().clamp(0, num_patches)


def exact_dtype(ratios: Tensor) -> Tensor:
    """Ratios in float64 (float32 on MPS, which has no float64) for count arithmetic.

    float32 products add their own rounding error on top of the ratio's: float32(0.9) * 35
    rounds to 31.5 exactly, while the stored ratio 0.89999998 times 35 is 31.4999993.
    """
    return ratios.float() if ratios.device.type == "mps" else ratios.double()


def ranks(keys: Tensor, descending: bool = False) -> Tensor:
    """Position of every entry of each row in that row's sorted order.

    ``ranks(keys)[b, i] == r`` means ``keys[b, i]`` is the ``r``-th smallest (``descending``:
    largest) of row ``b``; ties keep index order (stable sort), so results are deterministic.
    Comparing ranks with a per-row count ``k[:, None]`` selects a variable number of entries per
    row without any host synchronisation.

    Args:
        keys: ``(B, N)`` values to rank.
        descending: rank the largest value first.

    Returns:
        ``(B, N)`` int64 ranks, each row a permutation of ``0..N-1``.
    """
    order = torch.sort(keys, dim=1, descending=descending, stable=True).indices
    positions = torch.arange(keys.shape[1], device=keys.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def check_grid(grid_hw: tuple[int, int]) -> tuple[int, int]:
    """Validate a patch grid ``(H, W)`` and return it as ints."""
    if len(grid_hw) != 2 or min(int(grid_hw[0]), int(grid_hw[1])) < 1:
        raise ValueError(f"grid_hw must be (H, W) with H, W >= 1 patches, got {grid_hw}")
    return int(grid_hw[0]), int(grid_hw[1])
