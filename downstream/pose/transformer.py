"""DETR-style pre-norm transformer encoder / decoder that exposes queries, keys and attention maps.

Carion et al. (DETR, 2020) with ``normalize_before=True`` as MS-Transformer uses it (Shavit et
al., ICCV 2021): encoder layer ``x += SA(q = k = LN(x) + pos, v = LN(x)); x += FFN(LN(x))``;
decoder layer ``t += SA(LN(t) + qpos, LN(t) + qpos, LN(t)); t += CA(LN(t) + qpos, mem + pos, mem);
t += FFN(LN(t))``; a final LayerNorm after each stack. The attention keeps q and k after the
in-projection, (B, heads, N, d_head), for the query-key alignment loss (Lee et al., NeurIPS 2024)
and the collapse diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AttentionRecord:
    """What one attention layer saw: q, k (B, heads, N, d) and optionally probabilities (B, heads, N, M)."""

    q: torch.Tensor
    k: torch.Tensor
    attn: torch.Tensor | None = None


@dataclass
class EncoderTrace:
    layers: list[AttentionRecord] = field(default_factory=list)


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v in-projections.

    Args:
        dim: Model width; heads: number of heads; dropout: on the attention probabilities.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                want_attn: bool = False) -> tuple[torch.Tensor, AttentionRecord]:
        """(B, N, D) queries, (B, M, D) keys / values -> ((B, N, D), record of q, k [, attn])."""
        q, k, v = self._split(self.q_proj(query)), self._split(self.k_proj(key)), self._split(self.v_proj(value))
        p = self.dropout if self.training else 0.0
        attn = None
        if want_attn:
            attn = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
            out = F.dropout(attn, p, self.training) @ v
        else:  # fused kernel: the probabilities are not needed
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        out = out.transpose(1, 2).flatten(2)
        return self.out_proj(out), AttentionRecord(q, k, attn)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + FFN layer."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, want_attn: bool = False) -> tuple[torch.Tensor, AttentionRecord]:
        h = self.norm1(x)
        qk = h + pos
        out, rec = self.attn(qk, qk, h, want_attn)
        x = x + self.drop1(out)
        return x + self.drop2(self.ffn(self.norm2(x))), rec


class DecoderLayer(nn.Module):
    """Pre-norm self-attention over the queries, cross-attention to the memory, FFN."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn, self.cross_attn = Attention(dim, heads, dropout), Attention(dim, heads, dropout)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, t: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor,
                want_attn: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the updated (B, S, D) queries and the cross-attention (B, heads, S, N) if asked."""
        h = self.norm1(t)
        out, _ = self.self_attn(h + query_pos, h + query_pos, h)
        t = t + self.drop1(out)
        out, rec = self.cross_attn(self.norm2(t) + query_pos, memory + pos, memory, want_attn)
        t = t + self.drop2(out)
        return t + self.drop3(self.ffn(self.norm3(t))), rec.attn


class PoseTransformer(nn.Module):
    """Encoder over image tokens + decoder over one learned query per scene (one MS-Transformer branch).

    Args:
        dim: Width (256); heads: 8; ffn: FFN hidden width (256); dropout: 0.1.
        enc_layers, dec_layers: Layer counts (6/6 position, 4/4 orientation in MS-Transformer).
    """

    def __init__(self, dim: int = 256, heads: int = 8, ffn: int = 256, dropout: float = 0.1, enc_layers: int = 6,
                 dec_layers: int = 6) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(EncoderLayer(dim, heads, ffn, dropout) for _ in range(enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(dim, heads, ffn, dropout) for _ in range(dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, queries: torch.Tensor,
                want_attn: bool = False) -> tuple[torch.Tensor, list[AttentionRecord], torch.Tensor | None]:
        """Args:
            src: (B, N, D) projected image tokens; pos: (N, D) positional encoding; queries: (S, D).
            want_attn: Also return attention probabilities (slower, for diagnostics).

        Returns:
            (latents (B, S, D), per-encoder-layer records of q, k [, attn], last decoder cross-attention
            (B, heads, S, N) or None).
        """
        pos = pos.unsqueeze(0).to(src.dtype)
        records = []
        x = src
        for layer in self.encoder:
            x, rec = layer(x, pos, want_attn)
            records.append(rec)
        memory = self.enc_norm(x)
        query_pos = queries.unsqueeze(0).expand(src.shape[0], -1, -1)
        t = torch.zeros_like(query_pos)
        cross = None
        for layer in self.decoder:
            t, cross = layer(t, memory, pos, query_pos, want_attn)
        return self.dec_norm(t), records, cross
