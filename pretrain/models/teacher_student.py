"""Teacher-student pair for DINO / iBOT: backbone + projection heads, EMA teacher.

References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), 2021.
    Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", 2022.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn


@dataclass
class GlobalOutput:
    """Outputs of one multi-crop network on the global crops.

    Attributes:
        cls_logits: (G*B, K) head output of the pooled embedding.
        patch_logits: (G*B, N, K2) head output per patch token, or None (DINO).
        attention: (G*B, N) masking score ([CLS]->patch or SimPool map), if requested.
    """

    cls_logits: torch.Tensor
    patch_logits: Optional[torch.Tensor]
    attention: Optional[torch.Tensor]


class MultiCropNetwork(nn.Module):
    """A backbone with a [CLS]/pooled head and, for iBOT, a patch head.

    Args:
        backbone: A :class:`pretrain.models.VisionTransformer`.
        head: Projection head applied to the pooled embedding (B, D) -> (B, K).
        patch_head: Head for patch tokens (B, N, D) -> (B, N, K2); ``None`` shares ``head``.
        with_patch: Whether patch logits are computed at all (False for DINO).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module,
                 patch_head: Optional[nn.Module] = None, with_patch: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.patch_head = patch_head
        self.with_patch = with_patch

    def forward_global(self, x: torch.Tensor, masks: Optional[torch.Tensor] = None,
                       return_attention: Optional[str] = None) -> GlobalOutput:
        """Global crops of one resolution in one batch: x (G*B, C, H, W), masks (G*B, N)."""
        f = self.backbone.forward_features(x, masks=masks, return_attention=return_attention)
        patch_logits = None
        if self.with_patch:
            patch_logits = (self.patch_head or self.head)(f.patch_tokens)
        return GlobalOutput(self.head(f.pooled), patch_logits, f.attention)

    def forward_local(self, x: torch.Tensor) -> torch.Tensor:
        """Local crops in one batch: x (L*B, C, h, w) -> (L*B, K); no patch logits needed."""
        return self.head(self.backbone.forward_features(x).pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_local(x)


class EMATeacher:
    """Keeps ``teacher = m * teacher + (1 - m) * student`` with multi-tensor ops.

    The parameter lists are matched once by name, so the per-step update is two fused
    ``torch._foreach_*`` calls and never touches the host.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        s = dict(student.named_parameters())
        t = dict(teacher.named_parameters())
        if s.keys() != t.keys():
            diff = sorted(set(s) ^ set(t))[:5]
            raise ValueError(f"teacher and student differ in parameters, e.g. {diff}")
        self.student: List[torch.Tensor] = [s[k] for k in s]
        self.teacher: List[torch.Tensor] = [t[k] for k in s]
        with torch.no_grad():
            torch._foreach_copy_(self.teacher, self.student)
        teacher.requires_grad_(False)

    @torch.no_grad()
    def update(self, momentum: float) -> None:
        """One EMA step with ``momentum`` in [0, 1] (1 keeps the teacher unchanged)."""
        # lerp: t + (1 - m) * (s - t) == m * t + (1 - m) * s
        torch._foreach_lerp_(self.teacher, [p.detach() for p in self.student], 1.0 - momentum)
