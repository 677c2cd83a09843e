"""Everything drawn for one image: per-head [CLS] (or SimPool) maps, their 60%-mass parts, hidden patches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from downstream.attention.hidden_patches import hidden_patches
from downstream.attention.threshold import mass_threshold
from downstream.localization.maps import attention_maps

__all__ = ["ImageMaps", "image_maps"]


@dataclass
class ImageMaps:
    """The maps of one image.

    Attributes:
        photo: (H, W, 3) uint8 the model saw.
        maps: (h, gh, gw) the last block's [CLS] -> patch attention per head, or (1, gh, gw)
            SimPool's attention (``source == "simpool"``).
        kept: (h, gh, gw) bool, each map's patches holding ``mass`` of its attention.
        hidden: strategy -> (gh, gw) bool, the patches it would mask.
        source: ``"cls"`` or ``"simpool"``.
    """

    photo: np.ndarray
    maps: torch.Tensor
    kept: torch.Tensor
    hidden: dict[str, torch.Tensor]
    source: str


@torch.no_grad()
def image_maps(model: nn.Module, photo: np.ndarray, x: torch.Tensor, ratio: float = 0.4, seed: int = 0,
               show_max: float = 0.1, mass: float = 0.6, block: int = -1) -> ImageMaps:
    """Compute the maps of one image.

    Args:
        model: our ViT (eval mode); registers are left out of every map.
        photo: (H, W, 3) uint8.
        x: (1, 3, H, W) normalised image on the model's device.
        ratio, seed, show_max: masking (see :func:`hidden_patches`).
        mass: share of attention the thresholded maps keep.
        block: block of the [CLS] maps (-1 = last; SimPool reads the last block).
    """
    source = "simpool" if getattr(model, "simpool", None) is not None else "cls"
    maps = attention_maps(model, x, block=block, source=source)[0].cpu()  # (h, gh, gw)
    scores = model.forward_features(x, return_attention="cls").attention.float()  # (1, N): what AttMask ranks
    hidden = hidden_patches(scores, tuple(maps.shape[-2:]), ratio, seed, show_max)
    return ImageMaps(photo=photo, maps=maps, kept=mass_threshold(maps, mass), source=source,
                     hidden={k: v[0].cpu() for k, v in hidden.items()})
