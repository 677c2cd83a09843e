"""Manifold representation of the attention key (Meng et al., "A Manifold Representation of
the Key in Vision Transformers", 2024).

The key gets its own weights (decoupled from query/value) and is expanded into H charts:
``K = Gamma * (X W_k^T)`` with ``W_k`` of shape (H*D, D). Each chart is then mixed over tokens
by a group-wise kernel-size-1 Conv1d whose channels are the H*T (chart, token) pairs, i.e.
one T x T matrix per chart; optionally followed by context broadcasting (CB,
``K = (K + mean_{charts,tokens}(gamma' * K)) / 2``) and an aggregation back to D channels:

===========  ======================================  =====
variant      aggregation                             CB
===========  ======================================  =====
spatialk     linear ``to_out`` (H*D -> D)            no
kua          linear ``to_out`` (H*D -> D)            yes
simplek      one dense Conv1d over H*T -> T channels  no
vanillak     mean over the H charts                  yes
===========  ======================================  =====

Token count. The token-mixing matrices have T x T entries, so a module only works for the
token counts it was built for. Multi-crop pretraining feeds 224 px global crops (T = 197 for
ViT-S/16) and 96 px local crops (T = 37) through the same backbone, so we keep one set of
mixing weights per registered token count (``token_counts``; the model derives them from
``img_size`` and ``extra_img_sizes``). The charts' key projection, Gamma and gamma' are shared
across token counts; only the token mixing is per count. An unregistered count is an error
that names the count and how to register it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["MANIFOLD_KEY_VARIANTS", "ManifoldKey"]

MANIFOLD_KEY_VARIANTS = ("spatialk", "kua", "simplek", "vanillak")


class ManifoldKey(nn.Module):
    """Computes the key (B, T, D) from the block input (B, T, D) through H charts.

    Args:
        dim: token width D (the key has the same width as the query).
        num_charts: H, number of charts.
        variant: one of ``spatialk``, ``kua``, ``simplek``, ``vanillak``.
        token_counts: the sequence lengths T (prefix tokens included) to build mixing
            weights for.
    """

    def __init__(
        self, dim: int, num_charts: int = 4, variant: str = "vanillak", token_counts: Iterable[int] = (197,)
    ) -> None:
        super().__init__()
        if variant not in MANIFOLD_KEY_VARIANTS:
            raise ValueError(f"unknown manifold key variant {variant!r}; choose one of {MANIFOLD_KEY_VARIANTS}")
        if num_charts < 1:
            raise ValueError(f"num_charts must be >= 1, got {num_charts}")
        counts = sorted({int(t) for t in token_counts})
        if not counts:
            raise ValueError("ManifoldKey needs at least one token count")
        self.dim, self.num_charts, self.variant = dim, num_charts, variant
        self.k = nn.Linear(dim, num_charts * dim, bias=False)
        self.gamma = nn.Parameter(torch.ones(num_charts * dim))
        self.mixing = nn.ParameterDict({f"t{t}": nn.Parameter(self._new_mixing(t)) for t in counts})
        self.cb_gamma = nn.Parameter(torch.ones(dim)) if variant in ("kua", "vanillak") else None
        self.to_out = nn.Linear(num_charts * dim, dim, bias=False) if variant in ("spatialk", "kua") else None

    @property
    def token_counts(self) -> list[int]:
        """Sequence lengths this module has token-mixing weights for."""
        return sorted(int(k[1:]) for k in self.mixing)

    def _new_mixing(self, t: int) -> torch.Tensor:
        # Same init as nn.Conv1d's default (kaiming-uniform, a=sqrt(5)) -> U(-1/sqrt(fan_in), ..).
        h = self.num_charts
        shape, fan_in = ((t, h * t), h * t) if self.variant == "simplek" else ((h, t, t), t)
        bound = 1.0 / math.sqrt(fan_in)
        return torch.empty(shape).uniform_(-bound, bound)

    def add_token_count(self, t: int) -> None:
        """Register fresh token-mixing weights for sequence length ``t`` (no-op if present)."""
        if f"t{t}" not in self.mixing:
            ref = self.k.weight
            self.mixing[f"t{t}"] = nn.Parameter(self._new_mixing(t).to(device=ref.device, dtype=ref.dtype))

    def _weights_for(self, t: int) -> torch.Tensor:
        key = f"t{t}"
        if key not in self.mixing:
            raise ValueError(
                f"manifold key ({self.variant}) has token-mixing weights for {self.token_counts} tokens "
                f"but got {t} tokens. Its token-mixing Conv1d is tied to the sequence length: create the "
                "model with extra_img_sizes=(...) listing every input size you feed (e.g. local crops), "
                "or call model.add_img_size(size)."
            )
        return self.mixing[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> key (B, T, D)."""
        b, t, d = x.shape
        h = self.num_charts
        w = self._weights_for(t).to(x.dtype)
        k = (self.k(x) * self.gamma).view(b, t, h, d)  # (B, T, H, D)
        if self.variant == "simplek":
            # dense Conv1d over the H*T (chart-major) channels -> T channels
            return torch.einsum("sm,bmd->bsd", w, k.transpose(1, 2).reshape(b, h * t, d))
        # grouped Conv1d: one T x T token-mixing matrix per chart
        k = torch.einsum("hst,bthd->bhsd", w, k)  # (B, H, T, D)
        if self.cb_gamma is not None:  # context broadcasting, Eq. (4)
            k = 0.5 * (k + (k * self.cb_gamma).mean(dim=(1, 2), keepdim=True))
        if self.to_out is None:  # VanillaK, Eq. (5)
            return k.mean(dim=1)
        return self.to_out(k.permute(0, 2, 1, 3).reshape(b, t, h * d))
