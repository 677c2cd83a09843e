"""Teacher-student pair for DINO / iBOT: backbone + projection heads, EMA teacher.

References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), 2021.
    Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", 2022.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pretrain.models.heads import DINOHead, iBOTHead

__all__ = [
    "PATCH_HEAD_LAYOUTS",
    "EMATeacher",
    "GlobalOutput",
    "MultiCropNetwork",
    "build_multicrop_network",
    "infer_patch_head_layout",
]


@dataclass
class GlobalOutput:
    """Outputs of one multi-crop network on the global crops.

    Attributes:
        cls_logits: (G*B, K) head output of the pooled embedding.
        patch_logits: (G*B, N, K2) head output per patch token, (G*B, M, K2) or flat (S, K2) with
            ``keep_patches``, or None (DINO).
        attention: (G*B, N) masking score ([CLS]->patch or SimPool map), if requested.
        pooled: (G*B, D) the backbone's pooled vector (before the head).
    """

    cls_logits: torch.Tensor
    patch_logits: torch.Tensor | None
    attention: torch.Tensor | None
    pooled: torch.Tensor | None = None


PATCH_HEAD_LAYOUTS = ("ibot", "separate")


class MultiCropNetwork(nn.Module):
    """A backbone with a [CLS]/pooled head and, for iBOT, patch logits.

    Args:
        backbone: A :class:`pretrain.models.VisionTransformer`.
        head: Projection head. An :class:`~pretrain.models.heads.iBOTHead` gives both outputs
            (one MLP, ``last_layer`` / ``last_layer2``: the reference layout); a
            :class:`~pretrain.models.heads.DINOHead` gives the pooled logits (and the patch
            logits too when ``patch_head`` is None and ``with_patch``).
        patch_head: a separate full head for the patch tokens (our layout before issue 11,
            kept for old checkpoints: ``patch_head_layout="separate"``); None otherwise.
        with_patch: Whether patch logits are computed at all (False for DINO).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module,
                 patch_head: nn.Module | None = None, with_patch: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.patch_head = patch_head
        self.with_patch = with_patch

    def forward_global(self, x: torch.Tensor, masks: torch.Tensor | None = None,
                       return_attention: str | None = None,
                       keep_patches: torch.Tensor | None = None) -> GlobalOutput:
        """Global crops of one resolution in one batch: x (G*B, C, H, W), masks (G*B, N).

        ``keep_patches`` (G*B, M) long: patch logits only at these positions ((G*B, M, K2));
        (G*B, N) bool: flat patch logits (S, K2) of the selected patches in row-major order; the
        others are never computed (see ``VisionTransformer.forward_features``); DINO
        (``with_patch=False``) reads no patch output, so it computes only the prefix tokens in
        the last block whatever ``keep_patches`` is.
        """
        if not self.with_patch:
            keep_patches = x.new_empty((x.shape[0], 0), dtype=torch.long)
        f = self.backbone.forward_features(x, masks=masks, return_attention=return_attention,
                                           keep_patches=keep_patches)
        if not self.with_patch:
            return GlobalOutput(self.head(f.pooled), None, f.attention, f.pooled)
        if self.patch_head is not None:
            return GlobalOutput(self.head(f.pooled), self.patch_head(f.patch_tokens), f.attention, f.pooled)
        if isinstance(self.head, iBOTHead):
            cls_logits, patch_logits = self.head.forward_tokens(f.pooled, f.patch_tokens)
            return GlobalOutput(cls_logits, patch_logits, f.attention, f.pooled)
        return GlobalOutput(self.head(f.pooled), self.head(f.patch_tokens), f.attention, f.pooled)

    def forward_local(self, x: torch.Tensor) -> torch.Tensor:
        """Local crops in one batch: x (L*B, C, h, w) -> (L*B, K); no patch logits needed.

        Only the pooled vector is read, so with [CLS] pooling the last block computes only the
        prefix tokens (same output, fewer FLOPs; see ``VisionTransformer.forward_features``).
        """
        no_patches = x.new_empty((x.shape[0], 0), dtype=torch.long)
        return self.head(self.backbone.forward_features(x, keep_patches=no_patches).pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_local(x)


def build_multicrop_network(
    backbone: nn.Module,
    out_dim: int,
    patch_out_dim: int,
    hidden_dim: int = 2048,
    bottleneck_dim: int = 256,
    nlayers: int = 3,
    norm_last_layer: bool = True,
    shared_head: bool = False,
    with_patch: bool = True,
    patch_head_layout: str = "ibot",
) -> MultiCropNetwork:
    """Backbone + heads as DINO (``with_patch=False``) or iBOT (``with_patch=True``) build them.

    Args:
        backbone: the ViT (``backbone.embed_dim`` is the heads' input width).
        out_dim: [CLS] prototypes K.
        patch_out_dim: patch prototypes K2 (ignored for DINO).
        hidden_dim, bottleneck_dim, nlayers, norm_last_layer: see :class:`DINOHead`.
        shared_head: iBOT: the patch tokens use the [CLS] last layer too (needs
            ``patch_out_dim == out_dim``); False gives them their own ``last_layer2``.
        with_patch: iBOT (True: an :class:`iBOTHead`) or DINO (False: a :class:`DINOHead`).
        patch_head_layout: ``"ibot"`` (the reference: one MLP, two last layers) or
            ``"separate"`` (our layout before issue 11: a second full DINO head
            ``patch_head.*``, needs ``shared_head=False``), to resume old checkpoints; see
            :func:`infer_patch_head_layout`.

    Raises:
        ValueError: unknown layout, ``shared_head=True`` with ``patch_out_dim != out_dim``, or
            the separate layout with ``shared_head=True``.
    """
    if patch_head_layout not in PATCH_HEAD_LAYOUTS:
        raise ValueError(f"unknown patch_head_layout {patch_head_layout!r}; choose one of {PATCH_HEAD_LAYOUTS}")
    dim = backbone.embed_dim
    mlp = {"hidden_dim": hidden_dim, "bottleneck_dim": bottleneck_dim, "nlayers": nlayers,
               "norm_last_layer": norm_last_layer}
    if not with_patch:
        return MultiCropNetwork(backbone, DINOHead(dim, out_dim, **mlp), None, with_patch=False)
    if patch_head_layout == "ibot":
        head = iBOTHead(dim, out_dim, patch_out_dim, shared_head=shared_head, **mlp)
        return MultiCropNetwork(backbone, head, None, with_patch=True)
    if shared_head:
        raise ValueError("patch_head_layout='separate' is a second full head: it needs shared_head=False "
                         "(for a shared head use the default layout 'ibot', which loads old shared heads)")
    return MultiCropNetwork(backbone, DINOHead(dim, out_dim, **mlp), DINOHead(dim, patch_out_dim, **mlp),
                            with_patch=True)


def infer_patch_head_layout(state_dict: Mapping[str, Any]) -> str:
    """``"separate"`` if a MultiCropNetwork state dict has ``patch_head.*`` keys, else ``"ibot"``."""
    return "separate" if any(k.split("module.", 1)[-1].startswith("patch_head.") for k in state_dict) else "ibot"


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
        self.student: list[torch.Tensor] = [s[k] for k in s]
        self.teacher: list[torch.Tensor] = [t[k] for k in s]
        with torch.no_grad():
            torch._foreach_copy_(self.teacher, self.student)
        teacher.requires_grad_(False)

    @torch.no_grad()
    def update(self, momentum: float) -> None:
        """One EMA step with ``momentum`` in [0, 1] (1 keeps the teacher unchanged)."""
        # lerp: t + (1 - m) * (s - t) == m * t + (1 - m) * s
        torch._foreach_lerp_(self.teacher, [p.detach() for p in self.student], 1.0 - momentum)
