"""LOST's input geometry: every image at its own size, zero-padded at the right / bottom to a multiple of the patch size.

LOST (Simeoni et al., BMVC 2021; ``main_lost.py``) normalises each image (ToTensor + ImageNet
mean / std), then pads it with zeros *after* normalisation up to ``ceil(H / p) * p`` x
``ceil(W / p) * p``: the padding is the mean colour, not black, and the token grid is
``ceil(H / p) x ceil(W / p)``. Boxes stay in the image's own pixel frame. Images of different
padded sizes cannot share a batch: :func:`size_batches` groups the images by padded size
(a ViT treats the images of a batch independently, so a batch gives the same maps as one image
at a time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["pad_normalised", "padded_hw", "size_batches"]


def padded_hw(hw: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``patch_size``: ``(ceil(H / p) * p, ceil(W / p) * p)``."""
    return (math.ceil(hw[0] / patch_size) * patch_size, math.ceil(hw[1] / patch_size) * patch_size)


def pad_normalised(x: torch.Tensor, sizes: Sequence[tuple[int, int]], patch_size: int) -> torch.Tensor:
    """Zero-pad a batch of *normalised* images to the common padded size, as LOST pads one image.

    Args:
        x: (B, C, H, W) normalised images; image i occupies ``x[i, :, :h_i, :w_i]``.
        sizes: (h_i, w_i) of every image; all must round up to the same padded size.
        patch_size: p.

    Returns:
        (B, C, H', W') with H', W' multiples of p; zeros right of / below each image.

    Raises:
        ValueError: Images of different padded sizes (use :func:`size_batches`).
    """
    targets = {padded_hw(hw, patch_size) for hw in sizes}
    if len(targets) != 1:
        raise ValueError(f"one batch holds images of padded sizes {sorted(targets)}: batch them with "
                         "downstream.localization.padding.size_batches (or batch size 1)")
    th, tw = targets.pop()
    if x.shape[-2] > th or x.shape[-1] > tw:
        raise ValueError(f"batch tensor {tuple(x.shape[-2:])} is larger than the padded size {(th, tw)}")
    out = F.pad(x, (0, tw - x.shape[-1], 0, th - x.shape[-2]))
    for i, (h, w) in enumerate(sizes):  # anything beyond the image itself is zero, as in LOST
        out[i, :, h:, :] = 0
        out[i, :, :, w:] = 0
    return out


def size_batches(sizes: Sequence[tuple[int, int]], patch_size: int, batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of images with the same padded size (a ``batch_sampler``).

    Groups keep the order of their first image; within a group the dataset order is kept.

    Args:
        sizes: (H, W) per image.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, hw in enumerate(sizes):
        groups.setdefault(padded_hw(hw, patch_size), []).append(i)
    return [idx[s:s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]
