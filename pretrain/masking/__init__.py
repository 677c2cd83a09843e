"""Patch masks for iBOT-style masked image modeling, built on the device.

Random, block-wise (BEiT) and attention-guided (AttMask High / Low / Hint) strategies, with a
per-crop mask ratio.
"""

from pretrain.masking.attmask import ATTMASK_MODES, attmask
from pretrain.masking.block import block_masks, default_min_area
from pretrain.masking.masker import STRATEGIES, Masker, build_masker
from pretrain.masking.random_mask import random_masks
from pretrain.masking.ratios import mask_counts, sample_mask_ratios

__all__ = [
    "ATTMASK_MODES",
    "STRATEGIES",
    "Masker",
    "attmask",
    "block_masks",
    "build_masker",
    "default_min_area",
    "mask_counts",
    "random_masks",
    "sample_mask_ratios",
]
