"""Block-wise masks (BEiT, Bao et al., ICLR 2022; iBOT's default "block" prediction shape).

The reference draws blocks image by image in Python on the CPU. Here every round draws one
block for ALL images at once on the device: ``tries`` candidate rectangles per image are drawn
together and the first valid one is kept, which has the same distribution as BEiT's sequential
"up to 10 attempts" loop because the attempts are i.i.d. given the current mask. The loop runs
over blocks (a fixed ``max_blocks`` rounds), never over images, and never reads a value back to
the host.

Facts matched from BEiT/iBOT (``masking_generator.py`` / ``ImageFolderMask``):
- the mask stops at most at ``int(r * N)`` patches (floor): iBOT compares new patches with the
  float ``r * N - count``, which for integer counts is the same bound;
- block area ``~ U(min_area, r * N - count)`` (the float remainder, as iBOT), aspect ratio
  ``h / w = exp(U(log 0.3, log 1/0.3))``, ``h = round(sqrt(area * aspect))``,
  ``w = round(sqrt(area / aspect))``;
- a block must lie strictly inside the grid's extent: ``h < H`` and ``w < W`` (so a 1 x W or
  1 x 1 grid gets no block at all, as in BEiT); ``full_span=True`` allows ``h <= H``,
  ``w <= W`` instead (a named deviation for tiny grids);
- a candidate is valid if it adds between 1 and ``remaining`` new patches, so the mask NEVER
  exceeds the target; if all tries fail the image stops early, so it may fall SHORT of the
  target (BEiT does the same). Measured on 14x14 with r ~ U(0.1, 0.5): about a third of the
  masks end short, by 0.7 patches on average and by less than ``min_area`` in practice;
- ``min_area = (min(H, W) // 3) ** 2`` (iBOT's formula: 16 for a 14x14 grid, 81 for 28x28), which
  scales with the grid; we floor it at 1 so tiny grids (e.g. 2x2) work.

What the tests check against a literal image-by-image re-statement of iBOT's loop (400 masks on
14x14, r ~ U(0.1, 0.5)): the mean shortfall below the target and the mean number of connected
blocks per mask agree within the stated tolerances (0.5 and 0.4 patches / blocks), and no block
reaches the grid's full height or width. That is a statistical check, not a proof of identical
distributions; the one argument for identity is the i.i.d.-tries remark above.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pretrain.masking.ratios import check_grid, exact_dtype, mask_counts


def default_min_area(grid_hw: tuple[int, int]) -> int:
    """iBOT's minimum block area ``(min(H, W) // 3) ** 2``, at least 1."""
    return max(1, (min(grid_hw) // 3) ** 2)


def block_masks(
    ratios: Tensor,
    grid_hw: tuple[int, int],
    generator: torch.Generator | None = None,
    min_area: int | None = None,
    aspect_range: tuple[float, float] = (0.3, 1 / 0.3),
    tries: int = 10,
    max_blocks: int = 16,
    full_span: bool = False,
) -> Tensor:
    """Block-wise masks with about ``int(r_b * N)`` patches per row (never more).

    Args:
        ratios: ``(B,)`` mask ratios, 0 for an unmasked crop.
        grid_hw: patch grid ``(H, W)``; ``N = H * W``. Any size, odd grids included.
        generator: optional RNG on the ratios' device.
        min_area: minimum block area in patches (default :func:`default_min_area`).
        aspect_range: range of the block aspect ratio ``h / w``, sampled log-uniformly.
        tries: candidate blocks per round and image (BEiT's 10 attempts).
        max_blocks: rounds of block placement. BEiT needs about 3.5 blocks on average and at
            most ~12 for r <= 0.5 (simulated), so 16 rarely cuts a mask short; a mask cut
            short just ends below its target.
        full_span: allow blocks as tall / wide as the grid (``h <= H``, ``w <= W``); False (the
            reference) requires ``h < H`` and ``w < W``.

    Returns:
        ``(B, N)`` bool, True = masked, row-major over the grid.
    """
    height, width = check_grid(grid_hw)
    low = default_min_area((height, width)) if min_area is None else int(min_area)
    lo_aspect, hi_aspect = aspect_range
    if low < 1 or tries < 1 or max_blocks < 0 or not 0 < lo_aspect <= hi_aspect:
        raise ValueError(
            f"need min_area >= 1, tries >= 1, max_blocks >= 0 and 0 < aspect low <= high; got "
            f"min_area={low}, tries={tries}, max_blocks={max_blocks}, aspect_range={aspect_range}"
        )
    device = ratios.device
    batch = ratios.shape[0]
    target = mask_counts(ratios, height * width)
    # iBOT draws the block area up to the float remainder r * N - count, not the integer one
    target_float = exact_dtype(ratios) * (height * width)
    masks = torch.zeros(batch, height, width, dtype=torch.bool, device=device)
    count = torch.zeros(batch, dtype=torch.long, device=device)
    active = target > 0
    log_aspect = (math.log(lo_aspect), math.log(hi_aspect))
    for _ in range(max_blocks):
        blocks = _candidate_blocks(target_float - count, (height, width), low, log_aspect, tries, generator,
                                   full_span)
        new = (blocks & ~masks[:, None]).flatten(2).sum(-1)  # (B, T) patches each try adds
        valid = (new > 0) & (new <= (target - count)[:, None])  # empty = did not fit
        first = valid.long().argmax(dim=1)  # first valid try, as BEiT's sequential attempts
        chosen = blocks[torch.arange(batch, device=device), first]
        placed = active & valid.any(dim=1)
        masks |= chosen & placed[:, None, None]
        count = masks.flatten(1).sum(-1)
        active = placed & (count < target)  # a round with no valid try ends that image
    return masks.flatten(1)


def _candidate_blocks(
    remaining: Tensor,
    grid_hw: tuple[int, int],
    min_area: int,
    log_aspect: tuple[float, float],
    tries: int,
    generator: torch.Generator | None,
    full_span: bool = False,
) -> Tensor:
    """``(B, T, H, W)`` bool rectangles; empty where the sampled size does not fit the grid.

    ``remaining``: ``(B,)`` float upper end of the area draw (``r * N - count``).
    """
    height, width = grid_hw
    u = torch.rand(4, remaining.shape[0], tries, generator=generator, device=remaining.device)
    # U(min_area, remaining) like random.uniform, which also covers remaining < min_area.
    area = min_area + (remaining[:, None] - min_area) * u[0].to(remaining.dtype)
    aspect = torch.exp(log_aspect[0] + (log_aspect[1] - log_aspect[0]) * u[1])
    h = torch.round(torch.sqrt(area * aspect)).long()
    w = torch.round(torch.sqrt(area / aspect)).long()
    max_h, max_w = (height, width) if full_span else (height - 1, width - 1)  # BEiT: h < H, w < W
    fits = (h >= 1) & (w >= 1) & (h <= max_h) & (w <= max_w)
    top = (u[2] * (height - h + 1).clamp(min=1)).long()  # uniform in [0, H - h]
    left = (u[3] * (width - w + 1).clamp(min=1)).long()
    rows = torch.arange(height, device=remaining.device)
    cols = torch.arange(width, device=remaining.device)
    in_rows = (rows >= top[..., None]) & (rows < (top + h)[..., None]) & fits[..., None]
    in_cols = (cols >= left[..., None]) & (cols < (left + w)[..., None])
    return in_rows[..., :, None] & in_cols[..., None, :]
