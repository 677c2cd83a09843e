"""Projection head of DINO / iBOT (Caron et al., 2021; Zhou et al., 2022).

MLP (GELU) -> bottleneck -> L2 normalisation -> weight-normalised linear layer to K outputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["DINOHead"]

# torch.nn.utils.weight_norm (used by the DINO / iBOT releases) names the two tensors
# weight_g / weight_v; the parametrization API stores them as original0 / original1.
_LEGACY = {"last_layer.weight_g": "last_layer.parametrizations.weight.original0",
           "last_layer.weight_v": "last_layer.parametrizations.weight.original1"}


class DINOHead(nn.Module):
    """DINO head: (..., in_dim) -> (..., out_dim).

    Args:
        in_dim: backbone width D.
        out_dim: number of prototypes K (65536 DINO, 8192 iBOT).
        hidden_dim: MLP width.
        bottleneck_dim: width before the L2 normalisation.
        nlayers: MLP layers (>= 1); 1 is a single linear map to the bottleneck.
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
        dims = [in_dim] + [hidden_dim] * (nlayers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < nlayers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False), dim=0)
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)
        self.norm_last_layer = norm_last_layer
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad_(False)
        self._register_load_state_dict_pre_hook(self._rename_legacy_keys)

    @staticmethod
    def _rename_legacy_keys(state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Accept DINO / iBOT checkpoints saved with torch.nn.utils.weight_norm.
        for old, new in _LEGACY.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_dim) -> logits (..., out_dim)."""
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)
