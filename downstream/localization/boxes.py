"""One box per image from patch-level attention: DINO's 60%-of-mass rule and LOST's seed expansion.

* Mass rule (Caron et al., DINO 2021, ``visualize_attention.py``; used as "DINO-seg" by LOST):
  sort a head's [CLS] attention ascending, normalise its cumulative sum, keep the patches where
  it exceeds ``1 - mass`` (the patches holding ``mass`` = 60% of the attention), take one
  4-connected component and its box, scaled by the patch size. Which component (``rule``):
  ``largest``: the largest one (ours: DINO's description), box clipped to the image; ``lost``:
  as LOST's ``object_discovery.dino_seg`` picks it: the largest among the labels
  ``1 .. max - 1`` of a raster-order labelling (``range(max)`` leaves out the last label), and
  with at most one component label 0, i.e. the *unselected* patches; the box is not clipped to
  the image (LOST's padded border can be inside it).
* LOST (Simeoni et al., BMVC 2021): keys K (N, d) of the last block, A = K K^T, degree =
  #(A > 0) per patch; seed = the lowest-degree patch; among the ``k`` = 100 lowest-degree patches
  keep those with A[seed, p] > 0; M = sum of their rows of A; the box of the 4-connected
  component of M > 0 that holds the seed.

Boxes are continuous pixel coordinates ``[x0, y0, x1, y1]`` (x1 exclusive) as in LOST's CorLoc.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["COMPONENT_RULES", "component_box", "lost_boxes", "lost_component", "mass_boxes", "mass_mask",
           "to_continuous"]

COMPONENT_RULES = ("largest", "lost")


def _components(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels of a bool (h, w) mask (0 = background), numbered in raster order
    of each component's first pixel (as ``scipy.ndimage.label``, which LOST uses)."""
    import cv2

    labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)[1]
    if labels.max() < 2:
        return labels
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    fg = ids > 0
    order = ids[fg][np.argsort(first[fg])]  # component ids by first pixel
    remap = np.zeros(ids.max() + 1, dtype=labels.dtype)
    remap[order] = np.arange(1, len(order) + 1)
    return remap[labels]


def lost_component(labels: np.ndarray) -> int:
    """The label LOST's ``dino_seg`` keeps: sizes of labels ``0 .. max - 1`` are counted; with two or
    more of them the largest of labels ``1 .. max - 1`` (ties: the lowest), else label 0 (background)."""
    top = int(labels.max())
    sizes = np.bincount(labels.ravel(), minlength=top + 1)[:top]
    return int(np.argmax(sizes[1:]) + 1) if len(sizes) > 1 else 0


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
                  seed: tuple[int, int] | None = None, rule: str = "largest") -> np.ndarray:
    """Box of one connected component of a patch mask (h, w), in pixels (continuous).

    ``seed`` (row, col) picks the component holding it (LOST); otherwise ``rule`` picks one
    (``largest`` or ``lost``, see the module docstring). An empty mask gives the whole image.
    Boxes are clipped to ``img_hw`` (H, W) except under the ``lost`` rule, as in LOST.
    """
    if rule not in COMPONENT_RULES:
        raise ValueError(f"component rule {rule!r}: choose one of {', '.join(COMPONENT_RULES)}")
    labels = _components(mask)
    if labels.max() == 0 and rule == "largest":
        return np.array([0, 0, img_hw[1], img_hw[0]], dtype=np.float64)
    if seed is not None and labels[seed] > 0:
        target = labels[seed]
    elif rule == "lost":
        target = lost_component(labels)
    else:
        target = int(np.bincount(labels.ravel())[1:].argmax()) + 1
    ys, xs = np.nonzero(labels == target)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64) * patch_size
    if rule == "lost" and seed is None:
        return box
    return np.minimum(box, [img_hw[1], img_hw[0], img_hw[1], img_hw[0]])


def _per_image(img_hw, n: int) -> list[tuple[int, int]]:
    """One (H, W) per image from a shared (H, W) or a list of them."""
    if len(img_hw) == 2 and all(isinstance(v, (int, np.integer)) for v in img_hw):
        return [tuple(img_hw)] * n
    if len(img_hw) != n:
        raise ValueError(f"{len(img_hw)} image sizes for {n} maps")
    return [tuple(s) for s in img_hw]


def mass_boxes(attention: torch.Tensor, grid: tuple[int, int], patch_size: int, img_hw,
               mass: float = 0.6, rule: str = "largest") -> np.ndarray:
    """60%-of-mass boxes of a batch of maps.

    Args:
        attention: (B, N) attention over the N = h * w patches.
        grid: (h, w) patch grid.
        img_hw: (H, W) of every image, or one (H, W) per image (padded inputs: the real sizes).
        rule: which component (:data:`COMPONENT_RULES`).

    Returns:
        (B, 4) float boxes in pixels.
    """
    masks = mass_mask(attention, mass).view(-1, *grid).cpu().numpy()
    sizes = _per_image(img_hw, len(masks))
    return np.stack([component_box(m, patch_size, hw, rule=rule) for m, hw in zip(masks, sizes)])


def lost_boxes(keys: torch.Tensor, grid: tuple[int, int], patch_size: int, img_hw, k: int = 100) -> np.ndarray:
    """LOST boxes of a batch.

    Args:
        keys: (B, N, d) last-block keys of the patches (heads concatenated, prefix tokens removed).
        grid: (h, w) patch grid, N = h * w.
        img_hw: (H, W), or one per image: boxes are clipped to it (LOST: the unpadded size).

    Returns:
        (B, 4) float boxes in pixels.
    """
    a = torch.bmm(keys.float(), keys.float().transpose(1, 2))  # (B, N, N)
    degree = (a > 0).sum(-1)  # (B, N)
    order = torch.argsort(degree, dim=-1, stable=True)
    potentials = order[:, : min(k, keys.shape[1])]  # (B, k)
    seed = order[:, 0]
    out, sizes = [], _per_image(img_hw, keys.shape[0])
    for b in range(keys.shape[0]):
        row = a[b, seed[b]]
        similar = potentials[b][row[potentials[b]] > 0]
        m = a[b, similar].sum(0).view(*grid).cpu().numpy()
        s = int(seed[b])
        out.append(component_box(m > 0, patch_size, sizes[b], seed=(s // grid[1], s % grid[1])))
    return np.stack(out)


def to_continuous(boxes_inclusive: np.ndarray) -> np.ndarray:
    """Inclusive pixel boxes (x1, y1 on the object) -> continuous boxes (x1 + 1, y1 + 1)."""
    b = np.asarray(boxes_inclusive, dtype=np.float64).reshape(-1, 4).copy()
    b[:, 2:] += 1
    return b
