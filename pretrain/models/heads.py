"""Projection heads of DINO and iBOT (Caron et al., 2021; Zhou et al., ICLR 2022).

MLP (GELU) -> bottleneck -> L2 normalisation -> weight-normalised linear layer to K outputs.
:class:`iBOTHead` shares that MLP between the [CLS] (pooled) embedding and the patch tokens
and, with ``shared_head=False``, gives the patch tokens their own last layer (``last_layer2``),
exactly as iBOT's ``models/head.py``. State-dict keys follow the references: ``mlp.*``
(``mlp.weight`` / ``mlp.bias`` for ``nlayers=1``, ``mlp.{0,2,4}.*`` otherwise), ``last_layer.*``
and ``last_layer2.*``.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["DINOHead", "iBOTHead"]

# torch.nn.utils.weight_norm (used by the DINO / iBOT releases) names the two tensors
# weight_g / weight_v; the parametrization API stores them as original0 / original1.
_G, _V = "parametrizations.weight.original0", "parametrizations.weight.original1"


def _weight_normed_linear(in_dim: int, out_dim: int, norm_last_layer: bool) -> nn.Module:
    """Bias-free linear layer with weight norm, magnitude g = 1 (frozen if ``norm_last_layer``)."""
    layer = weight_norm(nn.Linear(in_dim, out_dim, bias=False), dim=0)
    with torch.no_grad():
        layer.parametrizations.weight.original0.fill_(1.0)
    if norm_last_layer:
        layer.parametrizations.weight.original0.requires_grad_(False)
    return layer


def _rename_legacy_weight_norm(state_dict: dict[str, Any], prefix: str, layer: str) -> None:
    for old, new in (("weight_g", _G), ("weight_v", _V)):
        src, dst = f"{prefix}{layer}.{old}", f"{prefix}{layer}.{new}"
        if src in state_dict and dst not in state_dict:
            state_dict[dst] = state_dict.pop(src)


class DINOHead(nn.Module):
    """DINO head: (..., in_dim) -> (..., out_dim).

    Args:
        in_dim: backbone width D.
        out_dim: number of prototypes K (65536 DINO, 8192 iBOT).
        hidden_dim: MLP width.
        bottleneck_dim: width before the L2 normalisation.
        nlayers: MLP layers (>= 1). 1 is a single ``nn.Linear`` stored as ``mlp.weight`` /
            ``mlp.bias``, as in DINO / iBOT (our older ``mlp.0.*`` keys are renamed on load).
        norm_last_layer: fix the weight-norm magnitude g to 1 (not trained), so the last
            layer is a cosine similarity against K unit prototypes.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        if nlayers < 1:
            raise ValueError(f"nlayers must be >= 1, got {nlayers}")
        self.nlayers = nlayers
        if nlayers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            dims = [in_dim] + [hidden_dim] * (nlayers - 1) + [bottleneck_dim]
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(itertools.pairwise(dims)):
                layers.append(nn.Linear(a, b))
                if i < nlayers - 1:
                    layers.append(nn.GELU())
            self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = _weight_normed_linear(bottleneck_dim, out_dim, norm_last_layer)
        self.norm_last_layer = norm_last_layer
        self._register_load_state_dict_pre_hook(self._rename_legacy_keys)

    def _rename_legacy_keys(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # DINO / iBOT checkpoints saved with torch.nn.utils.weight_norm
        for layer in ("last_layer", "last_layer2"):
            _rename_legacy_weight_norm(state_dict, prefix, layer)
        # our checkpoints before issue 11 kept a one-layer MLP in a Sequential (mlp.0.*)
        if self.nlayers == 1:
            for name in ("weight", "bias"):
                old, new = f"{prefix}mlp.0.{name}", f"{prefix}mlp.{name}"
                if old in state_dict and new not in state_dict:
                    state_dict[new] = state_dict.pop(old)

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_dim) -> L2-normalised bottleneck (..., bottleneck_dim)."""
        return F.normalize(self.mlp(x), dim=-1, p=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_dim) -> logits (..., out_dim)."""
        return self.last_layer(self.bottleneck(x))


class iBOTHead(DINOHead):
    """iBOT head: one MLP for the pooled embedding and the patch tokens, two last layers.

    ``shared_head=False`` (iBOT's default for the student): the patch tokens get their own
    weight-normalised ``last_layer2`` of ``patch_out_dim`` prototypes; the MLP is shared.
    ViT-S/16 with 8192 / 8192 outputs: 9.72 M head parameters (a second full DINO head would
    be 15.23 M). ``shared_head=True``: ``last_layer2`` IS ``last_layer`` (one module under two
    names, so the state dict holds both key sets, as the reference's).

    Args:
        in_dim, out_dim, hidden_dim, bottleneck_dim, nlayers, norm_last_layer: see
            :class:`DINOHead`.
        patch_out_dim: patch prototypes K2 (8192 in iBOT).
        shared_head: share the last layer too.

    Raises:
        ValueError: ``shared_head=True`` with ``patch_out_dim != out_dim`` (a shared layer has
            one size; set ``shared_head=False`` or equal dimensions).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        patch_out_dim: int = 8192,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        norm_last_layer: bool = True,
        shared_head: bool = False,
    ) -> None:
        if shared_head and patch_out_dim != out_dim:
            raise ValueError(
                f"shared_head=True needs patch_out_dim == out_dim, got {patch_out_dim} != {out_dim}: "
                "set shared_head=False (a separate last layer for the patch tokens) or equal dimensions"
            )
        super().__init__(in_dim, out_dim, hidden_dim, bottleneck_dim, nlayers, norm_last_layer)
        self.shared_head = shared_head
        if shared_head:
            self.last_layer2 = self.last_layer
        else:
            self.last_layer2 = _weight_normed_linear(bottleneck_dim, patch_out_dim, norm_last_layer)

    def _rename_legacy_keys(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        super()._rename_legacy_keys(state_dict, prefix, *args)
        if self.shared_head:  # our older shared-head checkpoints store the layer once
            for name in (_G, _V):
                old, new = f"{prefix}last_layer.{name}", f"{prefix}last_layer2.{name}"
                if old in state_dict and new not in state_dict:
                    state_dict[new] = state_dict[old]

    def forward_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, N, in_dim) -> patch logits (B, N, patch_out_dim)."""
        return self.last_layer2(self.bottleneck(x))

    def forward_tokens(
        self, pooled: torch.Tensor, patch_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs with one MLP pass over [pooled; patches] (as the reference's forward).

        Args:
            pooled: (B, in_dim) [CLS] / pooled embedding.
            patch_tokens: (B, N, in_dim), or flat (S, in_dim) (any number of patches).

        Returns:
            (logits (B, out_dim), patch logits (B, N, patch_out_dim) or (S, patch_out_dim)).
        """
        if patch_tokens.ndim == 2:
            z = self.bottleneck(torch.cat([pooled, patch_tokens], dim=0))
            return self.last_layer(z[: pooled.shape[0]]), self.last_layer2(z[pooled.shape[0]:])
        z = self.bottleneck(torch.cat([pooled.unsqueeze(1), patch_tokens], dim=1))
        return self.last_layer(z[:, 0]), self.last_layer2(z[:, 1:])
