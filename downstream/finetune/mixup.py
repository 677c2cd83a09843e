"""Mixup and CutMix with soft, label-smoothed targets (batch mode, as timm's ``Mixup`` used by BEiT / iBOT).

Mixup (Zhang et al., ICLR 2018): ``x = lam * x + (1 - lam) * x.flip(0)``. CutMix (Yun et al., ICCV
2019): a box of ``(1 - lam)`` of the image area, centred uniformly at random and clipped to the image,
is pasted from ``x.flip(0)``; ``lam`` is then corrected to ``1 - box area / image area``. Targets are
``lam * smooth(y) + (1 - lam) * smooth(y.flip(0))`` with ``smooth(y) = (1 - s) * onehot(y) + s / C``
(timm's ``off = s / C``, ``on = 1 - s + off``), so every row sums to 1. One ``lam`` per batch, drawn
from Beta(alpha, alpha); with both enabled, CutMix is chosen with probability ``switch_prob`` (0.5).
Randomness comes from a numpy generator passed in, so a resumed run draws the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """(B,) int labels -> (B, C) float targets ``(1 - s) * onehot + s / C`` (rows sum to 1)."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return out.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def cutmix_box(lam: float, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) (end exclusive) of about ``(1 - lam)`` of the area, clipped to the image.

    The box sides are ``int(H * sqrt(1 - lam))`` and ``int(W * sqrt(1 - lam))``; the centre is
    uniform over the image, so near a border the box is clipped (smaller than asked).
    """
    ratio = float(np.sqrt(1.0 - lam))
    ch, cw = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    y0, y1 = int(np.clip(cy - ch // 2, 0, height)), int(np.clip(cy + ch // 2, 0, height))
    x0, x1 = int(np.clip(cx - cw // 2, 0, width)), int(np.clip(cx + cw // 2, 0, width))
    return y0, y1, x0, x1


@dataclass
class MixupCutmix:
    """Mixes a batch and its targets (see the module docstring).

    Args:
        num_classes: C.
        mixup_alpha: Beta parameter of mixup (0 disables it; 0.8 in BEiT / iBOT).
        cutmix_alpha: Beta parameter of CutMix (0 disables it; 1.0 in BEiT / iBOT).
        prob: Probability of mixing a batch at all (1.0).
        switch_prob: Probability of CutMix when both are enabled (0.5).
        smoothing: Label smoothing s (0.1).
    """

    num_classes: int
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    prob: float = 1.0
    switch_prob: float = 0.5
    smoothing: float = 0.1

    def _draw(self, rng: np.random.Generator) -> tuple[str, float]:
        if (self.mixup_alpha <= 0 and self.cutmix_alpha <= 0) or rng.random() >= self.prob:
            return "none", 1.0
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return ("cutmix" if use_cutmix else "mixup"), float(rng.beta(alpha, alpha))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) images and (B,) labels -> mixed images and (B, num_classes) soft targets."""
        kind, lam = self._draw(rng)
        if kind == "mixup":
            images = images * lam + images.flip(0) * (1.0 - lam)
        elif kind == "cutmix":
            y0, y1, x0, x1 = cutmix_box(lam, images.shape[-2], images.shape[-1], rng)
            images = images.clone()
            images[..., y0:y1, x0:x1] = images.flip(0)[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (images.shape[-2] * images.shape[-1])
        targets = smooth_one_hot(labels, self.num_classes, self.smoothing)
        return images, targets * lam + targets.flip(0) * (1.0 - lam)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_c targets * log_softmax(logits)``; (B, C) both."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
