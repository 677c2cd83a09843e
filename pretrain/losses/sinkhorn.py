"""Sinkhorn-Knopp teacher targets: an equipartitioned alternative to centering.

DINOv2 (Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024,
section 4, after SwAV, Caron et al. NeurIPS 2020) replaces DINO's centre + sharpened softmax of the
teacher by a few Sinkhorn-Knopp iterations on ``exp(t / T)``: each row (an image or a token) gets
a distribution over the ``K`` prototypes, and over the batch every prototype receives the same
mass ``1 / K``. Collapse onto one prototype and drift to a uniform output (which centering alone
lets happen early in short runs) are both ruled out by construction.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_(x: Tensor, op=None) -> Tensor:
    if _distributed():
        dist.all_reduce(x, op=op or dist.ReduceOp.SUM)
    return x


@torch.no_grad()
def sinkhorn_knopp(logits: Tensor, temp: float | Tensor, n_iters: int = 3,
                   row_weights: Tensor | None = None) -> Tensor:
    """Teacher targets by Sinkhorn-Knopp (DINOv2's ``sinkhorn_knopp_teacher``, restated).

    ``Q = exp(logits / temp)`` (rows weighted by ``row_weights``) is normalised to total mass 1,
    then ``n_iters`` times its columns are scaled to ``1 / K`` each and its rows to ``1 / R``
    each (``R`` = total row weight, summed over ranks when ``torch.distributed`` is
    initialised); finally rows are scaled by ``R`` so every weighted row sums to one. The
    global maximum is subtracted before ``exp`` (a common factor: the result is unchanged, and
    low temperatures cannot overflow). Rows of weight 0 come out as zeros and take no mass.

    Args:
        logits: (R, K) teacher head outputs (any float dtype; computed in float32).
        temp: teacher temperature.
        n_iters: Sinkhorn-Knopp iterations (3 in DINOv2).
        row_weights: optional (R,) 0/1 weights, e.g. the masked tokens of iBOT's patch loss.

    Returns:
        (R, K) float32 targets; weighted rows sum to 1.
    """
    if logits.ndim != 2:
        raise ValueError(f"sinkhorn_knopp expects (R, K) logits, got {tuple(logits.shape)}")
    x = logits.detach().float() / temp
    top = _all_reduce_(x.max().reshape(1), dist.ReduceOp.MAX if _distributed() else None)
    q = torch.exp(x - top)
    rows = torch.full((1,), float(x.shape[0]), device=x.device)
    if row_weights is not None:
        w = row_weights.to(q.dtype).reshape(-1, 1)
        q = q * w
        rows = w.sum().reshape(1)
    rows = _all_reduce_(rows).clamp_min(1.0)
    k = q.shape[1]
    q = q / _all_reduce_(q.sum().reshape(1)).clamp_min(torch.finfo(q.dtype).tiny)
    for _ in range(n_iters):
        q = q / _all_reduce_(q.sum(0, keepdim=True)).clamp_min(torch.finfo(q.dtype).tiny) / k
        q = q / q.sum(1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny) / rows
    return q * rows
