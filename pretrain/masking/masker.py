"""One object that turns a strategy name into per-crop masks for the training step."""

from __future__ import annotations

import torch
from torch import Tensor

from pretrain.masking.attmask import attmask
from pretrain.masking.block import block_masks
from pretrain.masking.random_mask import random_masks
from pretrain.masking.ratios import check_grid, mask_counts, sampling_device, sample_mask_ratios

STRATEGIES = ("none", "random", "block", "attmask_high", "attmask_hint", "attmask_low")


class Masker:
    """Masks for the student's global crops, drawn on the device inside the training step.

    Each crop gets its own ratio from :func:`sample_mask_ratios` (masked with probability
    ``prob``, ratio ``~ U(ratio_range)``), then the strategy picks which patches:
    ``"random"`` (:func:`random_masks`), ``"block"`` (BEiT, :func:`block_masks`),
    ``"attmask_high" | "attmask_low" | "attmask_hint"`` (AttMask, :func:`attmask`, needs the
    teacher's attention scores), or ``"none"`` (no masking: plain DINO).

    Args:
        strategy: one of :data:`STRATEGIES`.
        prob: probability that a crop is masked at all.
        ratio_range: range of the uniform mask ratio.
        show_max: AttMask-Hint's hint-pool fraction.
    """

    def __init__(
        self,
        strategy: str,
        prob: float = 0.5,
        ratio_range: tuple[float, float] = (0.1, 0.5),
        show_max: float = 0.1,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown masking strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
        low, high = ratio_range
        if not 0.0 <= prob <= 1.0 or not 0.0 <= low <= high <= 1.0 or not 0.0 <= show_max <= 1.0:
            raise ValueError(
                f"need 0 <= prob <= 1, 0 <= low <= high <= 1 and 0 <= show_max <= 1; got prob={prob}, "
                f"ratio_range={ratio_range}, show_max={show_max}"
            )
        self.strategy = strategy
        self.prob = prob
        self.ratio_range = (float(low), float(high))
        self.show_max = show_max

    @property
    def needs_attention(self) -> bool:
        """True if ``__call__`` needs the teacher's attention ``scores``."""
        return self.strategy.startswith("attmask")

    def max_count(self, num_patches: int) -> int:
        """An upper bound on the masked patches per crop of any draw: ``int(high * N)`` (0 for none).

        Every strategy masks at most ``mask_counts(ratio)`` patches and a float32 ratio drawn from
        ``U(low, high)`` is at most one float32 step above ``high``, so the bound is the count of
        that ratio. The training step uses it to compute the student's patch outputs only on
        ``max_count`` positions per crop (the masked ones first) with no host synchronisation.
        """
        if self.strategy == "none":
            return 0
        high = torch.tensor([self.ratio_range[1]], dtype=torch.float32)
        above = torch.nextafter(high, torch.tensor([2.0]))  # float32 rounding of low + (high - low) * u
        return int(mask_counts(above, num_patches)[0])

    def __repr__(self) -> str:
        return (
            f"Masker(strategy={self.strategy!r}, prob={self.prob}, ratio_range={self.ratio_range}, "
            f"show_max={self.show_max})"
        )

    def __call__(
        self,
        batch: int,
        grid_hw: tuple[int, int],
        scores: Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw masks for ``batch`` crops.

        Args:
            batch: number of crops ``B`` (all global crops of the step, e.g. ``G * B_img``).
            grid_hw: patch grid ``(H, W)`` of the crops; ``N = H * W``.
            scores: ``(B, N)`` teacher attention scores (needed iff :attr:`needs_attention`).
            generator: optional RNG on the target device.
            device: target device (default: the scores', else the generator's, else CPU).

        Returns:
            ``(B, N)`` bool, True = masked.
        """
        height, width = check_grid(grid_hw)
        if scores is not None:
            device = scores.device
        device = sampling_device(device, generator)
        if self.strategy == "none":
            return torch.zeros(batch, height * width, dtype=torch.bool, device=device)
        if self.needs_attention and (scores is None or tuple(scores.shape) != (batch, height * width)):
            got = None if scores is None else tuple(scores.shape)
            raise ValueError(
                f"strategy {self.strategy!r} needs teacher attention scores of shape "
                f"({batch}, {height * width}); got {got}. Pass forward_features(..., "
                "return_attention='cls').attention of the teacher"
            )
        ratios = sample_mask_ratios(batch, self.prob, self.ratio_range, generator, device)
        if self.strategy == "random":
            return random_masks(ratios, (height, width), generator)
        if self.strategy == "block":
            return block_masks(ratios, (height, width), generator)
        mode = self.strategy.removeprefix("attmask_")
        return attmask(scores, ratios, mode, self.show_max, generator)


def build_masker(
    strategy: str,
    prob: float = 0.5,
    ratio_range: tuple[float, float] = (0.1, 0.5),
    show_max: float = 0.1,
) -> Masker:
    """Build a :class:`Masker` from a strategy name (see :data:`STRATEGIES`)."""
    return Masker(strategy, prob, ratio_range, show_max)
