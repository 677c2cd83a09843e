"""One box per image from patch-level attention: DINO's 60%-of-mass rule and LOST's seed expansion.

* Mass rule (Caron et al., DINO 2021, ``visualize_attention.py``; used as "DINO-seg" by LOST):
  sort a head's [CLS] attention ascending, normalise its cumulative sum, keep the patches where
  it exceeds ``1 - mass`` (the patches holding ``mass`` = 60% of the attention), take the
  largest 4-connected component and its box, scaled by the patch size.
* LOST (Simeoni et al., BMVC 2021): keys K (N, d) of the last block, A = K K^T, degree =
  #(A > 0) per patch; seed = the lowest-degree patch; among the ``k`` = 100 lowest-degree patches
  keep those with A[seed, p] > 0; M = sum of their rows of A; the box of the 4-connected
  component of M > 0 that holds the seed.

Boxes are continuous pixel coordinates ``[x0, y0, x1, y1]`` (x1 exclusive) as in LOST's CorLoc.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["component_box", "lost_boxes", "mass_boxes", "mass_mask", "to_continuous"]


def _components(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels of a bool (h, w) mask (0 = background)."""
    import cv2

    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)[1]


def mass_mask(attention: torch.Tensor, mass: float = 0.6) -> torch.Tensor:
    """Patches holding ``mass`` of each map's attention.

    Args:
        attention: (B, N) non-negative attention over patches.
        mass: share of the total attention to keep.

    Returns:
        (B, N) bool.
    """
    vals, idx = torch.sort(attention.float(), dim=-1, stable=True)  # ties: deterministic
    cum = vals.cumsum(-1) / vals.sum(-1, keepdim=True).clamp_min(1e-12)
    keep_sorted = cum > (1.0 - mass)
    return torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)


def component_box(mask: np.ndarray, patch_size: int, img_hw: tuple[int, int],
                  seed: tuple[int, int] | None = None) -> np.ndarray:
    """Box of one connected component of a patch mask (h, w), in pixels (continuous, clipped to the image).

    ``seed`` (row, col) picks the component holding it; otherwise the largest. An empty mask
    gives the whole image.
    """
    labels = _components(mask)
    if labels.max() == 0:
        return np.array([0, 0, img_hw[1], img_hw[0]], dtype=np.float64)
    if seed is not None and labels[seed] > 0:
        target = labels[seed]
    else:
        target = int(np.bincount(labels.ravel())[1:].argmax()) + 1
    ys, xs = np.nonzero(labels == target)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64) * patch_size
    return np.minimum(box, [img_hw[1], img_hw[0], img_hw[1], img_hw[0]])


def mass_boxes(attention: torch.Tensor, grid: tuple[int, int], patch_size: int, img_hw: tuple[int, int],
               mass: float = 0.6) -> np.ndarray:
    """60%-of-mass boxes of a batch of maps.

    Args:
        attention: (B, N) attention over the N = h * w patches.
        grid: (h, w) patch grid.

    Returns:
        (B, 4) float boxes in pixels.
    """
    masks = mass_mask(attention, mass).view(-1, *grid).cpu().numpy()
    return np.stack([component_box(m, patch_size, img_hw) for m in masks])


def lost_boxes(keys: torch.Tensor, grid: tuple[int, int], patch_size: int, img_hw: tuple[int, int],
               k: int = 100) -> np.ndarray:
    """LOST boxes of a batch.

    Args:
        keys: (B, N, d) last-block keys of the patches (heads concatenated, prefix tokens removed).
        grid: (h, w) patch grid, N = h * w.

    Returns:
        (B, 4) float boxes in pixels.
    """
    a = torch.bmm(keys.float(), keys.float().transpose(1, 2))  # (B, N, N)
    degree = (a > 0).sum(-1)  # (B, N)
    order = torch.argsort(degree, dim=-1, stable=True)
    potentials = order[:, : min(k, keys.shape[1])]  # (B, k)
    seed = order[:, 0]
    out = []
    for b in range(keys.shape[0]):
        row = a[b, seed[b]]
        similar = potentials[b][row[potentials[b]] > 0]
        m = a[b, similar].sum(0).view(*grid).cpu().numpy()
        s = int(seed[b])
        out.append(component_box(m > 0, patch_size, img_hw, seed=(s // grid[1], s % grid[1])))
    return np.stack(out)


def to_continuous(boxes_inclusive: np.ndarray) -> np.ndarray:
    """Inclusive pixel boxes (x1, y1 on the object) -> continuous boxes (x1 + 1, y1 + 1)."""
    b = np.asarray(boxes_inclusive, dtype=np.float64).reshape(-1, 4).copy()
    b[:, 2:] += 1
    return b
