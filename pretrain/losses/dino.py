"""DINO self-distillation loss on the image-level ([CLS] / pooled) head outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrain.losses.center import check_centering, check_momentum, check_temperature, ema_update_center_
from pretrain.losses.sinkhorn import sinkhorn_knopp


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student over view pairs.

    For every teacher global view ``i`` and every student view ``j`` with ``i != j`` the loss
    is ``-sum_k softmax((t_i - c) / T_t)_k * log_softmax(s_j / T_s)_k``, averaged over the
    batch and then over the ``n_global * (n_global + n_local) - n_global`` pairs (Caron et al.,
    "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021, Eq. 3; iBOT's
    [CLS] loss, Zhou et al., ICLR 2022, is the same term). The centre ``c`` is an EMA
    (momentum 0.9) of the teacher's batch mean, updated after the loss is computed and
    all-reduced across ranks when ``torch.distributed`` is initialised. It is a registered
    buffer, so it is saved in ``state_dict()`` and restored on resume.

    Works without distributed, under autocast (computes in float32) and never synchronises
    with the host.

    Args:
        out_dim: number of prototypes ``K`` (head output size).
        n_global: number of global crops ``G`` (the teacher's views).
        n_local: number of local crops ``L`` (student-only views).
        student_temp: student softmax temperature ``T_s``.
        center_momentum: EMA momentum of the centre.
        centering: ``"ema"`` (DINO: the centre above) or ``"sinkhorn"`` (DINOv2: teacher targets
            by :func:`~pretrain.losses.sinkhorn.sinkhorn_knopp`; the centre is still tracked).
    """

    center: Tensor

    def __init__(
        self,
        out_dim: int,
        n_global: int = 2,
        n_local: int = 10,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        centering: str = "ema",
    ) -> None:
        super().__init__()
        check_centering(centering)
        if out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {out_dim}")
        if n_global < 1 or n_local < 0:
            raise ValueError(f"need n_global >= 1 and n_local >= 0, got {n_global} and {n_local}")
        if n_global * (n_global + n_local) - n_global == 0:
            raise ValueError(
                "DINOLoss has no pair of different views with n_global=1 and n_local=0; "
                "use at least two crops"
            )
        check_temperature("student_temp", student_temp)
        check_momentum(center_momentum)
        self.out_dim = out_dim
        self.n_global = n_global
        self.n_local = n_local
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.centering = centering
        self.register_buffer("center", torch.zeros(1, out_dim))

    @property
    def n_pairs(self) -> int:
        """Number of (teacher view, student view) pairs that enter the average."""
        return self.n_global * (self.n_global + self.n_local) - self.n_global

    def forward(self, student_out: Tensor, teacher_out: Tensor, teacher_temp: float | Tensor) -> Tensor:
        """Compute the loss and update the centre.

        Args:
            student_out: ``((G + L) * B, K)`` student head outputs, crop-major (all images of
                crop 0, then crop 1, ...), the ``G`` global crops first.
            teacher_out: ``(G * B, K)`` teacher head outputs for the global crops, crop-major.
                Gradients never flow into it.
            teacher_temp: teacher temperature ``T_t`` for this step (0.04 -> 0.07 warm-up).

        Returns:
            Scalar float32 loss.
        """
        check_temperature("teacher_temp", teacher_temp)  # host floats only: no sync
        batch = self._check_shapes(student_out, teacher_out)
        teacher = teacher_out.detach().float()
        if self.centering == "sinkhorn":
            q = sinkhorn_knopp(teacher, teacher_temp)
        else:
            q = F.softmax((teacher - self.center) / teacher_temp, dim=-1)
        q = q.view(self.n_global, batch, self.out_dim)
        log_p = F.log_softmax(student_out.float() / self.student_temp, dim=-1)
        log_p = log_p.view(self.n_global + self.n_local, batch, self.out_dim)
        # Sum over all (i, j) pairs at once via sum_i q_i, then remove the i == j terms:
        # O((G + L) * B * K) instead of O(G * (G + L) * B * K).
        all_pairs = torch.einsum("bk,cbk->", q.sum(0), log_p)
        same_view = torch.einsum("gbk,gbk->", q, log_p[: self.n_global])
        loss = -(all_pairs - same_view) / (batch * self.n_pairs)
        ema_update_center_(self.center, teacher.mean(0, keepdim=True), self.center_momentum)
        return loss

    def _check_shapes(self, student_out: Tensor, teacher_out: Tensor) -> int:
        if student_out.ndim != 2 or teacher_out.ndim != 2:
            raise ValueError(
                f"DINOLoss expects 2-D (crops*B, K) inputs, got student {tuple(student_out.shape)} "
                f"and teacher {tuple(teacher_out.shape)}"
            )
        if student_out.shape[1] != self.out_dim or teacher_out.shape[1] != self.out_dim:
            raise ValueError(
                f"last dim must be out_dim={self.out_dim}, got student {tuple(student_out.shape)} "
                f"and teacher {tuple(teacher_out.shape)}"
            )
        if teacher_out.shape[0] % self.n_global:
            raise ValueError(
                f"teacher_out has {teacher_out.shape[0]} rows, not a multiple of n_global={self.n_global}"
            )
        batch = teacher_out.shape[0] // self.n_global
        n_crops = self.n_global + self.n_local
        if student_out.shape[0] != n_crops * batch:
            raise ValueError(
                f"student_out has {student_out.shape[0]} rows; expected (n_global + n_local) * B = "
                f"{n_crops} * {batch} = {n_crops * batch} (crop-major). Set n_local to the number of "
                "local crops actually used"
            )
        return batch
