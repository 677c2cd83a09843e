"""Frozen-backbone patch features as maps: the last block, or the last 4 blocks concatenated."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def patch_feature_map(backbone: nn.Module, images: torch.Tensor, blocks: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, blocks * D, H / p, W / p) normed patch tokens of the last ``blocks`` blocks.

    Prefix tokens ([CLS], registers) are dropped; with ``blocks`` > 1 the blocks are concatenated
    along channels, oldest first (DINOv2's ``ms`` / multi-layer input).
    """
    outs = backbone.get_intermediate_layers(images, n=blocks)
    h, w = backbone.grid_for((images.shape[-2], images.shape[-1]))
    p = backbone.num_prefix_tokens
    maps = [o[:, p:].transpose(1, 2).reshape(o.shape[0], o.shape[2], h, w) for o in outs]
    return torch.cat(maps, dim=1)
