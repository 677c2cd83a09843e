"""ViT building blocks: patch embedding, MLP, per-sample drop path, transformer block.

Parameter names follow timm's ``VisionTransformer`` (``patch_embed.proj``, ``norm1``,
``attn.qkv``, ``mlp.fc1`` ...) so timm / DINO / iBOT weights load without renaming.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from pretrain.models.attention import Attention, Keep, select_tokens

__all__ = ["Block", "DropPath", "Mlp", "PatchEmbed", "drop_path"]


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> tokens: (B, C, H, W) -> (B, H/p * W/p, D)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """Two-layer GELU MLP: (..., D) -> (..., hidden) -> (..., D)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al., 2016): zero the whole residual branch per sample.

    Args:
        x: (B, ...) residual branch output.
        prob: probability of dropping a sample's branch.
        training: no-op unless True.

    Returns:
        x with dropped samples zeroed and kept ones scaled by 1 / (1 - prob).
    """
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask.div_(keep)


class DropPath(nn.Module):
    """Module wrapper of :func:`drop_path`."""

    def __init__(self, prob: float = 0.0) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.prob, self.training)

    def extra_repr(self) -> str:
        return f"prob={self.prob}"


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x)).

    Args:
        dim: token width D.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / D.
        qkv_bias: bias on the q/k/v projection.
        drop_path: stochastic-depth probability of both residual branches.
        key_variant, num_charts, token_counts, attention: see
            :class:`~pretrain.models.attention.Attention`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        key_variant: str = "standard",
        num_charts: int = 4,
        token_counts: Iterable[int] = (),
        attention: str = "auto",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, key_variant, num_charts, token_counts, attention)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, return_attention: str | None = None, keep: Keep | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D) -> (x (B, T, D), attention from :class:`Attention` or None).

        ``keep`` (an int Q, a (B, Q) long index or a flat (rows, tokens) pair, see
        :class:`Attention`) computes only those tokens' outputs: (B, Q, D) or flat (Q, D), the
        same rows as the full output. Stochastic depth is drawn per image as without ``keep``.
        """
        y, attn = self.attn(self.norm1(x), return_attention, keep)
        if isinstance(keep, tuple):  # flat rows: each row takes its image's drop-path draws
            batch, rows = x.shape[0], keep[0]
            x = select_tokens(x, keep) + self._drop_per_image(y, batch, rows)
            return x + self._drop_per_image(self.mlp(self.norm2(x)), batch, rows), attn
        x = (x if keep is None else select_tokens(x, keep)) + self.drop_path(y)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, attn

    def _drop_per_image(self, y: torch.Tensor, batch: int, rows: torch.Tensor) -> torch.Tensor:
        """Flat rows y (Q, D) of images ``rows`` (Q,): stochastic depth with one draw per image (B)."""
        if self.drop_path.prob == 0.0 or not self.training:
            return y
        return y * self.drop_path(y.new_ones(batch, 1))[rows]
