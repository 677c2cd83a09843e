"""Which patches each masking strategy would hide for one image, drawn by the project's own Masker."""

from __future__ import annotations

import torch

from pretrain.masking import Masker

__all__ = ["SHOWN_STRATEGIES", "hidden_patches"]

SHOWN_STRATEGIES = ("random", "block", "attmask_high", "attmask_hint", "attmask_low")


def hidden_patches(scores: torch.Tensor, grid_hw: tuple[int, int], ratio: float = 0.4, seed: int = 0,
                   show_max: float = 0.1, strategies: tuple[str, ...] = SHOWN_STRATEGIES) -> dict[str, torch.Tensor]:
    """Masks of every strategy at a fixed ratio, as the training step draws them.

    Args:
        scores: (B, N) the attention AttMask ranks patches by: ``forward_features(x,
            return_attention="cls").attention`` (head-mean [CLS] map or SimPool map), as in
            :mod:`pretrain.step`.
        grid_hw: patch grid (gh, gw), N = gh * gw.
        ratio: mask ratio (every image masked: ``prob=1``, ``ratio_range=(ratio, ratio)``).
        seed: seed of each strategy's generator (the same draw for every run).
        show_max: AttMask-Hint's hint-pool fraction.
        strategies: names from :data:`pretrain.masking.STRATEGIES`.

    Returns:
        strategy -> (B, gh, gw) bool, True = hidden.
    """
    out = {}
    for name in strategies:
        masker = Masker(name, prob=1.0, ratio_range=(ratio, ratio), show_max=show_max)
        gen = torch.Generator(device=scores.device).manual_seed(seed)
        masks = masker(scores.shape[0], grid_hw, scores=scores if masker.needs_attention else None,
                       generator=gen, device=scores.device)
        out[name] = masks.view(scores.shape[0], *grid_hw)
    return out
