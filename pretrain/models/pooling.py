"""Token pooling for ViTs: [CLS], global average, and SimPool.

SimPool: Psomas et al., "Keep It SimPool: Who Said Supervised Transformers Suffer from
Attention Deficit?", ICCV 2023. On the last block's output X (before the final norm):
q = W_q GAP(X), k = W_k LN(X), v = LN(X) (no value projection), a single head,
a = softmax(q k^T / sqrt(d)), u = a v; or, with gamma,
u = (a (v - min v + eps)^gamma)^(1/gamma) + beta, where the min is taken per sample (the
reference implementation takes it over the whole batch, which makes a sample's embedding
depend on the other samples of its batch) and beta is learnable, initialised at 0: one scalar
(shape (1,), as the reference ``sp.py``), or one per channel (shape (D,), ``beta="channel"``,
our layout before issue 11, kept so our older checkpoints load unchanged).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["POOLINGS", "SIMPOOL_BETAS", "SimPool"]

POOLINGS = ("cls", "gap", "simpool")
SIMPOOL_BETAS = ("scalar", "channel")


class SimPool(nn.Module):
    """Attention-based pooling of patch tokens, exposing its attention map.

    Args:
        dim: token width D.
        gamma: exponent of the generalised-mean variant (1.25 for ViT-S in the paper);
            None for plain attention pooling.
        qkv_bias: bias on W_q and W_k (the reference has none).
        eps: added after shifting v to be non-negative, so that pow is differentiable.
        beta: ``"scalar"`` (shape (1,), the reference) or ``"channel"`` (shape (D,)).
    """

    def __init__(
        self, dim: int, gamma: float | None = None, qkv_bias: bool = False, eps: float = 1e-6, beta: str = "scalar"
    ) -> None:
        super().__init__()
        if gamma is not None and gamma <= 0:
            raise ValueError(f"simpool gamma must be positive (or None), got {gamma}")
        if beta not in SIMPOOL_BETAS:
            raise ValueError(f"unknown simpool beta {beta!r}; choose one of {SIMPOOL_BETAS}")
        self.norm_patches = nn.LayerNorm(dim, eps=1e-6)
        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, dim, bias=qkv_bias)
        self.gamma = gamma
        self.eps = eps
        self.scale = dim**-0.5
        self.beta_mode = beta
        self.beta = nn.Parameter(torch.zeros(dim if beta == "channel" else 1)) if gamma is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool patch tokens.

        Args:
            x: (B, N, D) patch tokens of the last block, before the final norm.

        Returns:
            (pooled (B, D), attention (B, N) float32, rows sum to 1).
        """
        q = self.wq(x.mean(dim=1)).unsqueeze(1)  # (B, 1, D)
        v = self.norm_patches(x)  # (B, N, D)
        k = self.wk(v)
        logits = torch.matmul(q * self.scale, k.transpose(1, 2))[:, 0]  # (B, N)
        attn = logits.float().softmax(dim=-1)
        if self.gamma is None:
            pooled = torch.matmul(attn.to(v.dtype).unsqueeze(1), v)[:, 0]
            return pooled, attn
        # fp32, and an elementwise product + sum rather than a matmul so that autocast cannot
        # bring it back to bf16: pow with a fractional exponent is ill-conditioned there
        vf = v.float()
        vf = vf - vf.amin(dim=(1, 2), keepdim=True) + self.eps  # per-sample min
        pooled = (attn.unsqueeze(-1) * vf.pow(self.gamma)).sum(dim=1).pow(1.0 / self.gamma)
        pooled = pooled + self.beta.float()
        return pooled.to(v.dtype), attn
