"""Attention-guided masks: AttMask-High, -Low and -Hint.

Kakogeorgiou et al., "What to Hide from Your Students: Attention-Guided Masked Image
Modeling", ECCV 2022. The scores are the teacher's last-block [CLS]->patch attention averaged
over heads (or SimPool's attention map), taken from the teacher forward the loss needs anyway.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pretrain.masking.ratios import FLOOR_TOLERANCE, exact_dtype, mask_counts, ranks

ATTMASK_MODES = ("high", "low", "hint")


def attmask(
    scores: Tensor,
    ratios: Tensor,
    mode: str = "high",
    show_max: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mask patches by attention score, a per-row number ``int(r_b * N)`` (floor) of them.

    - ``"high"``: mask the most attended patches (AttMask-High).
    - ``"low"``: mask the least attended patches (AttMask-Low).
    - ``"hint"``: as High, then reveal hints: among the top ``int(show_max * N)`` patches by
      score, unmask ``int(show_max * r_b * N)`` of them chosen uniformly at random
      (both floors taken with a 1e-4 tolerance so 0.1 * 0.7 * 100 counts as 7)
      (AttMask-Hint). All of those are masked (for ``r_b >= show_max``), so the final count is
      exactly ``int(r_b * N) - int(show_max * r_b * N)``. The counts are floors, as in
      AttMask's code (``int(r * N)``); see :func:`~pretrain.masking.ratios.mask_counts`.

    Everything is sort/rank based and vectorised over rows; no host synchronisation.

    Args:
        scores: ``(B, N)`` attention scores over the patch tokens (higher = more attended).
        ratios: ``(B,)`` mask ratios, 0 for an unmasked crop.
        mode: ``"high"``, ``"low"`` or ``"hint"``.
        show_max: the fraction of all patches that forms the hint pool (0.1 in the paper).
        generator: RNG for the hint choice, on the scores' device.

    Returns:
        ``(B, N)`` bool, True = masked.
    """
    if mode not in ATTMASK_MODES:
        raise ValueError(f"unknown AttMask mode {mode!r}; valid: {', '.join(ATTMASK_MODES)}")
    if not 0.0 <= show_max <= 1.0:
        raise ValueError(f"show_max must be in [0, 1], got {show_max}")
    if scores.ndim != 2 or ratios.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be (B, N) and ratios (B,), got {tuple(scores.shape)} and {tuple(ratios.shape)}"
        )
    num_patches = scores.shape[1]
    score_rank = ranks(scores.float(), descending=mode != "low")  # 0 = first to be masked
    masks = score_rank < mask_counts(ratios, num_patches)[:, None]
    if mode == "hint":
        masks = masks & ~_hints(score_rank, masks, ratios, show_max, generator)
    return masks


def _hints(
    score_rank: Tensor, masks: Tensor, ratios: Tensor, show_max: float, generator: torch.Generator | None
) -> Tensor:
    """``(B, N)`` bool: the patches AttMask-Hint reveals again (see :func:`attmask`)."""
    num_patches = score_rank.shape[1]
    pool = masks & (score_rank < math.floor(show_max * num_patches + FLOOR_TOLERANCE))
    n_show = torch.floor(show_max * exact_dtype(ratios) * num_patches + FLOOR_TOLERANCE).long()
    keys = torch.rand(score_rank.shape, generator=generator, device=score_rank.device)
    keys = torch.where(pool, keys, torch.full_like(keys, 2.0))  # outside the pool: ranked last
    return pool & (ranks(keys) < n_show[:, None])
