"""DINOv2's linear segmentation head: BatchNorm2d on the (concatenated) patch features, then a 1x1 conv.

Oquab et al., "DINOv2", 2023; dinov2 ``eval/segmentation/models/decode_heads/linear_head.py`` (``BNHead``
with ``linear`` / ``ms`` configs): the last block's patch tokens (or the last 4 blocks' concatenated)
reshaped to (B, D, h, w), BatchNorm, a 1x1 convolution to the classes, and bilinear upsampling of the
logits to the label size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearSegHead(nn.Module):
    """(B, in_dim, h, w) patch features -> (B, num_classes, h, w) logits.

    Args:
        in_dim: Feature channels (D times the number of blocks concatenated).
        num_classes: K.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_dim)
        self.conv = nn.Conv2d(in_dim, num_classes, kernel_size=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(features))


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, H, W), bilinear (align_corners=False)."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
