"""AttMask's "masked image" robustness test (Kakogeorgiou et al., ECCV 2022): hide the most-attended patches.

The [CLS] (or SimPool) attention of the last block ranks the patches; the top ``ratio`` of them
are blacked out (pixel value 0) and the frozen features are recomputed. A model whose
prediction survives losing its most salient patches relies less on a few discriminative parts.
A random-patch control at the same ratio is reported beside it.
"""

from __future__ import annotations

import torch
from torch import nn

from downstream.localization.maps import attention_maps, patch_size_of
from pretrain.data.transforms import normalize_on_device

__all__ = ["PatchHiding", "hide_patches", "masked_features", "top_attended_mask"]


@torch.no_grad()
def top_attended_mask(model: nn.Module, x: torch.Tensor, ratio: float, random: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, gh, gw) bool: the ``ratio`` most-attended patches (head mean), or random ones if ``random``."""
    att = attention_maps(model, x).mean(1)  # (B, gh, gw)
    b, gh, gw = att.shape
    k = round(ratio * gh * gw)
    scores = torch.rand(b, gh * gw, generator=generator).to(x.device) if random else att.flatten(1)
    idx = scores.topk(k, dim=-1).indices
    return torch.zeros(b, gh * gw, dtype=torch.bool, device=x.device).scatter(1, idx, True).view(b, gh, gw)


def hide_patches(images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """uint8 images (B, 3, H, W) with the patches of ``mask`` (B, gh, gw) set to 0 (black)."""
    pixel = mask.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)  # (B, H, W)
    return images.masked_fill(pixel[:, None], 0)


@torch.no_grad()
def masked_features(model: nn.Module, images: torch.Tensor, ratio: float, mean, std, random: bool = False,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Pooled features (B, D) of uint8 images after hiding the top-``ratio`` attended (or random) patches."""
    x = normalize_on_device(images, tuple(mean), tuple(std))
    mask = top_attended_mask(model, x, ratio, random, generator)
    hidden = hide_patches(images, mask, patch_size_of(model))
    return model(normalize_on_device(hidden, tuple(mean), tuple(std))).float()


class PatchHiding(nn.Module):
    """A backbone that first hides the top-``ratio`` attended (or random) patches of its uint8 input.

    ``takes_uint8`` makes :func:`pretrain.features.represent` pass the raw batch, so the masked
    test runs through the one feature extraction. Forward: uint8 (B, 3, H, W) -> pooled (B, D).
    """

    takes_uint8 = True

    def __init__(self, model: nn.Module, ratio: float, mean, std, random: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.model, self.ratio, self.mean, self.std = model, ratio, mean, std
        self.random, self.generator = random, generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return masked_features(self.model, images, self.ratio, self.mean, self.std, self.random, self.generator)
