"""Pose regression losses: MS-Transformer's learned-weight pose loss and the QKA loss.

Shavit et al., "Learning Multi-Scene Absolute Pose Regression with Transformers" (ICCV 2021):
``L = L_x exp(-s_x) + s_x + L_q exp(-s_q) + s_q`` with learned ``s_x, s_q`` (Kendall & Cipolla
2017), plus the scene classifier's NLL. Lee et al., "Activating Self-Attention for Multi-Scene
Absolute Pose Regression" (NeurIPS 2024): the query-key alignment (QKA) loss pulls the mean of
each head's queries towards the mean of its keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (s_x, s_q) initial values of MS-Transformer's configs.
LOSS_INIT = {"indoor": (0.0, -3.0), "outdoor": (-3.0, -6.5)}


def query_key_alignment(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """QKA distance: || mean_tokens(q_h) - mean_tokens(k_h) ||_2, averaged over batch and heads.

    Args:
        q: (B, heads, N, d) queries after the in-projection.
        k: (B, heads, M, d) keys after the in-projection.

    Returns:
        Scalar tensor (differentiable).
    """
    if q.ndim != 4 or k.ndim != 4 or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must be (B, heads, N, d) with equal B, heads and d, got {tuple(q.shape)} "
                         f"and {tuple(k.shape)}")
    return (q.mean(dim=2) - k.mean(dim=2)).norm(dim=-1).mean()


def position_loss(x_pred: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    """L_x: mean over the batch of the Euclidean error, (B, 3) x 2 -> scalar."""
    return (x_pred - x_true).norm(dim=-1).mean()


def orientation_loss(q_pred: torch.Tensor, q_true: torch.Tensor) -> torch.Tensor:
    """L_q: mean of || q/|q| - q^/|q^| ||, (B, 4) x 2 -> scalar (as MS-Transformer; not sign-invariant)."""
    return (F.normalize(q_pred, dim=-1) - F.normalize(q_true, dim=-1)).norm(dim=-1).mean()


class PoseLoss(nn.Module):
    """``L_x e^{-s_x} + s_x + L_q e^{-s_q} + s_q`` with learned s_x, s_q (saved in the state dict).

    Args:
        s_x: Initial s_x (0 indoor, -3 outdoor).
        s_q: Initial s_q (-3 indoor, -6.5 outdoor).
        learnable: Learn s_x, s_q (MS-Transformer) or keep them fixed.
    """

    def __init__(self, s_x: float = 0.0, s_q: float = -3.0, learnable: bool = True) -> None:
        super().__init__()
        self.s_x = nn.Parameter(torch.tensor(float(s_x)), requires_grad=learnable)
        self.s_q = nn.Parameter(torch.tensor(float(s_q)), requires_grad=learnable)

    def forward(self, x_pred: torch.Tensor, q_pred: torch.Tensor, x_true: torch.Tensor,
                q_true: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: (B, 3) and (B, 4) predictions and targets. Returns (loss, {"l_x", "l_q"} detached)."""
        l_x, l_q = position_loss(x_pred, x_true), orientation_loss(q_pred, q_true)
        loss = l_x * torch.exp(-self.s_x) + self.s_x + l_q * torch.exp(-self.s_q) + self.s_q
        return loss, {"l_x": l_x.detach(), "l_q": l_q.detach()}
