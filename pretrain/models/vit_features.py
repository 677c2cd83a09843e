"""What :meth:`pretrain.models.vit.VisionTransformer.forward_features` returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ViTFeatures:
    """Output of :meth:`VisionTransformer.forward_features`.

    Attributes:
        pooled: (B, D) [CLS] / mean of patches / SimPool vector, after the final norm.
        patch_tokens: (B, N, D) patch tokens after the final norm.
        prefix_tokens: (B, P, D) [CLS] and register tokens after the final norm (P may be 0).
        attention: None, (B, N) [CLS] (or SimPool) attention over patches, or
            (B, h, T, T) full map of the last block.
    """

    pooled: torch.Tensor
    patch_tokens: torch.Tensor
    prefix_tokens: torch.Tensor
    attention: torch.Tensor | None = None
