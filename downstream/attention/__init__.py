"""Attention pictures: per-head [CLS] / SimPool maps, DINO's 60%-mass maps, and masked patches per strategy.

``python -m downstream.attention --checkpoint CKPT --images DIR --output DIR``; see
:mod:`downstream.attention.cli`.
"""

from downstream.attention.hidden_patches import SHOWN_STRATEGIES, hidden_patches
from downstream.attention.image_maps import ImageMaps, image_maps
from downstream.attention.threshold import mass_threshold

__all__ = ["SHOWN_STRATEGIES", "ImageMaps", "hidden_patches", "image_maps", "mass_threshold"]
