"""Initial weights of the pose head: as MS-Transformer / ActMST, or ours before (all matrices Xavier).

``ms_transformer`` (Shavit et al., ICCV 2021; Lee et al., NeurIPS 2024 reuse it) is what their
modules do at construction:

- attention (``torch.nn.MultiheadAttention._reset_parameters``): the packed in-projection
  ``in_proj_weight`` (3D x D) Xavier-uniform, so each of W_q, W_k, W_v is uniform in
  +-sqrt(6 / (D + 3D)) (not +-sqrt(6 / 2D) as three separate D x D matrices would be); the
  in-projection and out-projection biases zero;
- DETR's ``Transformer._reset_parameters`` then draws every matrix of the transformer again with
  Xavier-uniform: the packed in-projection (same distribution), the out-projection and the FFN
  weights; FFN biases and LayerNorms keep torch's defaults;
- the regressors (``PoseRegressor._reset_parameters``) Xavier weights, default biases;
- the input projection (a 1 x 1 convolution there, a Linear here: the same default
  Kaiming-uniform(a = sqrt 5) init for the same fan-in), the scene classifier ``Linear(2D -> 1)``
  and the per-scene queries (``nn.Embedding``: N(0, 1)) keep torch's defaults.

``xavier_all`` is ours before this option existed: every matrix of the head except the position
tables and queries Xavier-uniform, each of W_q, W_k, W_v as its own D x D matrix, biases default.
"""

from __future__ import annotations

import math

from torch import nn

from downstream.pose.transformer import Attention

SCHEMES: tuple[str, ...] = ("ms_transformer", "xavier_all")


def packed_in_projection_bound(dim: int) -> float:
    """Bound of Xavier-uniform on a (3 dim, dim) matrix: sqrt(6 / (fan_in + fan_out)) = sqrt(6 / (4 dim))."""
    return math.sqrt(6.0 / (dim + 3 * dim))


def reset_attention(attn: Attention) -> None:
    """One attention layer as ``nn.MultiheadAttention`` + DETR leave it: packed-Xavier q/k/v, Xavier out, zero biases."""
    bound = packed_in_projection_bound(attn.q_proj.in_features)
    for lin in (attn.q_proj, attn.k_proj, attn.v_proj):
        nn.init.uniform_(lin.weight, -bound, bound)
        nn.init.zeros_(lin.bias)
    nn.init.xavier_uniform_(attn.out_proj.weight)
    nn.init.zeros_(attn.out_proj.bias)


def initialize(head: nn.Module, scheme: str = "ms_transformer") -> None:
    """Re-draw the weights of a :class:`downstream.pose.model.PoseHead` (in place) by ``scheme``."""
    if scheme not in SCHEMES:
        raise ValueError(f"head.init must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if scheme == "xavier_all":
        for name, p in head.named_parameters():
            if p.dim() > 1 and not name.startswith(("pos.", "queries")):
                nn.init.xavier_uniform_(p)
        return
    for branch in head.branch.values():
        for module in branch.modules():  # DETR: every matrix of the transformer ...
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
        for module in branch.modules():  # ... the in-projections packed, attention biases zero
            if isinstance(module, Attention):
                reset_attention(module)
    for regressor in (head.reg_x, head.reg_q):
        for module in regressor.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
