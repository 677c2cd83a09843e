"""Multi-head self-attention with fused SDPA, an explicit path, and cheap [CLS] attention.

Which of the two paths runs is chosen per call (``attention="auto"``) by
:func:`choose_attention_path` from the device type, dtype and sequence length only (no host
synchronisation, no data-dependent branch), following the CPU measurements of
``python -m benchmarks.attention_path.attention_path``
(``benchmarks/attention_path/results/attention_path.md``); ``"fused"`` and ``"explicit"`` force one path.

Standard attention uses one fused ``qkv`` projection (timm layout, so timm / DINO / iBOT
weights load as-is). With a manifold key (Meng et al., 2024) the key has its own weights
(:class:`~pretrain.models.manifold_key.ManifoldKey`) and query/value share a ``qv`` projection.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.models.manifold_key import MANIFOLD_KEY_VARIANTS, ManifoldKey

__all__ = [
    "ATTENTION_MODES",
    "ATTENTION_PATHS",
    "KEY_VARIANTS",
    "Attention",
    "choose_attention_path",
    "cls_attention",
    "select_tokens",
    "short_softmax",
]

KEY_VARIANTS = ("standard",) + MANIFOLD_KEY_VARIANTS
ATTENTION_MODES = (None, "cls", "full")
ATTENTION_PATHS = ("auto", "fused", "explicit")

# CPU rule from benchmarks/attention_path/results/attention_path.md (forward + backward, interleaved medians):
# in float32 the explicit softmax path wins up to about 40 tokens (0.55x the SDPA time at T=5,
# 0.70x at T=17), SDPA from about 50 tokens on; in bfloat16 (and float16) the explicit path wins at
# every measured length (0.1-0.4x). Longer sequences than measured keep SDPA (no T x T buffer).
CPU_EXPLICIT_MAX_TOKENS = {torch.float32: 40, torch.float64: 40, torch.bfloat16: 577, torch.float16: 577}


def choose_attention_path(device_type: str, dtype: torch.dtype, seq_len: int) -> str:
    """``"fused"`` or ``"explicit"`` for one attention call (the ``attention="auto"`` rule).

    Depends on shapes, dtype and device only: no host synchronisation, no data-dependent branch.
    CUDA (and any non-CPU device): fused SDPA (flash / memory-efficient kernels). CPU:
    explicit for ``seq_len <= CPU_EXPLICIT_MAX_TOKENS[dtype]`` (40 tokens in float32, 577 in
    bfloat16 / float16), fused above; see ``benchmarks/attention_path/results/attention_path.md``.

    Args:
        device_type: ``x.device.type`` (``"cpu"``, ``"cuda"``, ...).
        dtype: the query dtype.
        seq_len: tokens T.
    """
    if device_type != "cpu":
        return "fused"
    return "explicit" if seq_len <= CPU_EXPLICIT_MAX_TOKENS.get(dtype, 40) else "fused"


# Up to this many keys a softmax written out (max, exp, sum, divide) beats the fused kernel on the
# CPU, whose per-row cost dominates rows this short: 0.24 vs 1.16 ms forward, 0.66 vs 1.57 ms
# forward + backward on the demo's (768, 4, 5, 5) local-crop logits; 1.27 vs 0.72 ms at 17 keys.
SHORT_SOFTMAX_MAX_KEYS = 8


def short_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``logits.softmax(-1)``, written out for float32 / float64 rows of at most
    :data:`SHORT_SOFTMAX_MAX_KEYS` (half precision keeps the fused kernel, which accumulates in
    float32).

    The subtracted row maximum is detached: softmax does not depend on it, so the gradient is
    the softmax's own.
    """
    if logits.shape[-1] > SHORT_SOFTMAX_MAX_KEYS or logits.dtype not in (torch.float32, torch.float64):
        return logits.softmax(dim=-1)
    e = (logits - logits.detach().amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


def cls_attention(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of the first token ([CLS]) to all tokens, from q_cls and K only.

    Costs O(T) per head instead of the O(T^2) full map.

    Args:
        q: (B, h, T, d) queries; only row 0 is used.
        k: (B, h, T, d) keys.
        scale: 1 / sqrt(d).

    Returns:
        (B, h, T) float32 softmax(q_cls k^T * scale).
    """
    logits = torch.matmul(q[:, :, :1] * scale, k.transpose(-2, -1))  # (B, h, 1, T)
    return logits[:, :, 0].float().softmax(dim=-1)


Keep = int | torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def select_tokens(x: torch.Tensor, keep: Keep) -> torch.Tensor:
    """The kept tokens of x (B, T, D).

    ``keep``: an int Q (the first Q tokens: (B, Q, D)), a (B, Q) long index ((B, Q, D)) or a
    pair ``(rows, tokens)`` of (Q,) long indices (flat: (Q, D), a different count per image).
    """
    if isinstance(keep, int):
        return x[:, :keep]
    if isinstance(keep, tuple):
        return x[keep[0], keep[1]]
    return torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class Attention(nn.Module):
    """Multi-head self-attention (Vaswani et al., 2017; Dosovitskiy et al., 2021).

    Args:
        dim: token width D.
        num_heads: number of heads h (D must be divisible by h).
        qkv_bias: bias on the query/key/value projection.
        key_variant: ``standard`` or a manifold-key variant (spatialk, kua, simplek, vanillak).
        num_charts: manifold-key charts H (ignored for ``standard``).
        token_counts: sequence lengths the manifold key supports (ignored for ``standard``).
        attention: ``"auto"`` (per call, :func:`choose_attention_path`), ``"fused"``
            (``F.scaled_dot_product_attention``) or ``"explicit"`` (softmax(q k^T / sqrt(d)) v).
            Both paths compute the same function (tested to float precision).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        key_variant: str = "standard",
        num_charts: int = 4,
        token_counts: Iterable[int] = (),
        attention: str = "auto",
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if key_variant not in KEY_VARIANTS:
            raise ValueError(f"unknown key_variant {key_variant!r}; choose one of {KEY_VARIANTS}")
        if attention not in ATTENTION_PATHS:
            raise ValueError(f"unknown attention path {attention!r}; choose one of {ATTENTION_PATHS}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attention = attention
        self.key_variant = key_variant
        if key_variant == "standard":
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        else:
            self.qv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
            self.key = ManifoldKey(dim, num_charts, key_variant, token_counts)
        self.proj = nn.Linear(dim, dim)

    def _split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        h, d = self.num_heads, self.head_dim
        if self.key_variant == "standard":
            q, k, v = self.qkv(x).reshape(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, v = self.qv(x).reshape(b, t, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
            k = self.key(x).reshape(b, t, h, d).transpose(1, 2)
        return q, k, v

    def _split_heads_kept(
        self, x: torch.Tensor, keep: Keep
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q of the kept tokens (B, h, Q, d); k, v of all tokens (B, h, T, d).

        Flat ``keep`` (rows, tokens): q (Q, h, 1, d) and each query's own image's k, v (Q, h, T, d).
        """
        b, t, dim = x.shape
        h, d = self.num_heads, self.head_dim
        xq = select_tokens(x, keep)
        standard = self.key_variant == "standard"
        layer = self.qkv if standard else self.qv  # rows: q, k, v (timm layout) or q, v
        w, bias = layer.weight, layer.bias
        q = F.linear(xq, w[:dim], None if bias is None else bias[:dim])
        rest = F.linear(x, w[dim:], None if bias is None else bias[dim:])  # k, v or v of every token
        if standard:
            k, v = rest.reshape(b, t, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            v = rest.reshape(b, t, h, d).transpose(1, 2)
            k = self.key(x).reshape(b, t, h, d).transpose(1, 2)
        if isinstance(keep, tuple):
            return q.reshape(-1, h, 1, d), k[keep[0]], v[keep[0]]
        return q.reshape(b, xq.shape[1], h, d).transpose(1, 2), k, v

    def forward(
        self, x: torch.Tensor, return_attention: str | None = None, keep: Keep | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over the tokens.

        Args:
            x: (B, T, D) tokens.
            return_attention: None; ``"cls"`` for the [CLS] row (B, h, T) computed from q_cls
                and K only (never the T x T map, whatever the path); ``"full"`` for the full map
                (B, h, T, T) (explicit path).
            keep: None (every token's output), an int ``Q`` (the first ``Q`` tokens' outputs), a
                (B, Q) long index, or a flat pair ``(rows, tokens)`` of (Q,) long indices: only
                those tokens are queries (all tokens of their image stay keys and values), so the
                other rows of the output are never computed. Their outputs are exactly the rows
                of the full output (same function, fewer FLOPs). ``"cls"`` needs token 0 to be
                the first kept token of a (B, Q) keep; ``"full"`` and flat keeps take no
                ``return_attention``.

        Returns:
            (out (B, T, D), (B, Q, D) with ``keep`` or (Q, D) with a flat one, attention or None).
        """
        b, t, c = x.shape
        if keep is None:
            q, k, v = self._split_heads(x)
        elif return_attention == "full" or (isinstance(keep, tuple) and return_attention is not None):
            raise ValueError(f"return_attention={return_attention!r} needs every query: call without keep")
        else:
            q, k, v = self._split_heads_kept(x, keep)
        attn = None
        path = self.attention
        if path == "auto":
            path = choose_attention_path(q.device.type, q.dtype, t)
        if return_attention == "full" or path == "explicit":
            full = short_softmax(torch.matmul(q * self.scale, k.transpose(-2, -1)))
            out = torch.matmul(full, v)
            if return_attention == "full":
                attn = full
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        if return_attention == "cls":
            attn = cls_attention(q, k, self.scale)
        elif return_attention not in ATTENTION_MODES:
            raise ValueError(f"return_attention must be one of {ATTENTION_MODES}, got {return_attention!r}")
        if isinstance(keep, tuple):
            return self.proj(out.reshape(-1, c)), attn  # (Q, h, 1, d) -> (Q, D)
        out = out.transpose(1, 2).reshape(b, q.shape[2], c)
        return self.proj(out), attn
