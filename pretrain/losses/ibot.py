"""iBOT masked-image-modeling loss on patch tokens, and the full iBOT objective."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrain.losses.center import check_centering, check_momentum, check_temperature, ema_update_center_
from pretrain.losses.dino import DINOLoss
from pretrain.losses.sinkhorn import sinkhorn_knopp


class iBOTPatchLoss(nn.Module):
    """Self-distillation on masked patch tokens (Zhou et al., "iBOT: Image BERT Pre-Training
    with Online Tokenizer", ICLR 2022, Eq. 2 / ``L_MIM``).

    For every global view ``v`` the student sees the masked image and the teacher the intact
    one; on each masked token ``n`` of that SAME view the loss is
    ``-sum_k softmax((t_vn - c) / T_t)_k * log_softmax(s_vn / T_s)_k``. Per image it is summed
    over its masked tokens and divided by its masked count (clamped to at least 1), then
    averaged over all ``G * B`` images, so an unmasked image contributes 0 but still counts
    in the mean (exactly as the reference implementation). The patch centre ``c`` (shape
    ``(1, 1, K)``) is its own buffer, an EMA (momentum 0.9) of the teacher's mean over all
    tokens of all images, all-reduced across ranks when ``torch.distributed`` is initialised.

    Args:
        patch_out_dim: number of patch prototypes ``K``.
        student_temp: student temperature ``T_s``.
        center_momentum: EMA momentum of the patch centre.
        centering: ``"ema"`` (iBOT) or ``"sinkhorn"`` (DINOv2: Sinkhorn-Knopp targets over the
            masked tokens of the batch, :func:`~pretrain.losses.sinkhorn.sinkhorn_knopp`).
    """

    center: Tensor

    def __init__(self, patch_out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "ema") -> None:
        super().__init__()
        check_centering(centering)
        self.centering = centering
        if patch_out_dim < 1:
            raise ValueError(f"patch_out_dim must be >= 1, got {patch_out_dim}")
        check_temperature("student_temp", student_temp)
        check_momentum(center_momentum)
        self.patch_out_dim = patch_out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, 1, patch_out_dim))

    def forward(
        self, student_patch: Tensor, teacher_patch: Tensor, masks: Tensor, teacher_temp: float | Tensor,
        index: Tensor | None = None,
    ) -> Tensor:
        """Compute the loss and update the patch centre.

        Args:
            student_patch: ``(G * B, N, K)`` student patch-head outputs of the masked views, or
                ``(G * B, M, K)`` at the positions ``index`` only.
            teacher_patch: ``(G * B, N, K)`` teacher patch-head outputs of the same views,
                unmasked (all tokens: the centre follows all of them). Gradients never flow
                into it.
            masks: ``(G * B, N)`` bool, True where the student's patch was masked.
            teacher_temp: teacher temperature for this step.
            index: optional ``(G * B, M)`` long token positions of ``student_patch``; they must
                include every masked token of the row (the others weigh 0 in the loss, so the
                value is the same as with all ``N`` tokens). Or a ``(G * B, N)`` bool selection
                holding every masked token (e.g. ``masks`` itself): ``student_patch`` is then
                flat ``(S, K)``, the selected tokens in row-major order.

        Returns:
            Scalar float32 loss.
        """
        check_temperature("teacher_temp", teacher_temp)
        self._check_shapes(student_patch, teacher_patch, masks, index)
        teacher = teacher_patch.detach().float()
        weights = masks.float()
        weights = weights / weights.sum(-1, keepdim=True).clamp(min=1.0)  # (G*B, N): 1/count on masked
        # Sinkhorn targets need the whole batch's masked tokens; the centred softmax is per token, so it
        # runs only on the selected ones
        picked = (sinkhorn_knopp(teacher.flatten(0, 1), teacher_temp, row_weights=masks.flatten()).view_as(teacher)
                  if self.centering == "sinkhorn" else teacher)
        if index is not None and index.dtype == torch.bool:
            picked, weights = picked[index], weights[index]  # (S, K), (S,)
        elif index is not None:
            picked = torch.gather(picked, 1, index.unsqueeze(-1).expand(-1, -1, picked.shape[-1]))
            weights = torch.gather(weights, 1, index)
        q = picked if self.centering == "sinkhorn" else F.softmax((picked - self.center) / teacher_temp, dim=-1)
        log_p = F.log_softmax(student_patch.float() / self.student_temp, dim=-1)
        per_token = (q * log_p).sum(-1)  # (G*B, M) or (S,): cross-entropy per token, negated
        loss = -(weights * per_token).sum() / masks.shape[0]
        ema_update_center_(self.center, teacher.mean(dim=(0, 1), keepdim=True), self.center_momentum)
        return loss

    def _check_shapes(self, student: Tensor, teacher: Tensor, masks: Tensor, index: Tensor | None) -> None:
        if index is None:
            expected = tuple(teacher.shape)
        elif index.dtype == torch.bool:
            if index.shape != teacher.shape[:2]:
                raise ValueError(f"a bool index must be (G*B, N) = {tuple(teacher.shape[:2])}, got {tuple(index.shape)}")
            expected = (student.shape[0], teacher.shape[-1])  # S is checked by the indexing
        else:
            expected = (*index.shape, teacher.shape[-1])
        if teacher.ndim != 3 or tuple(student.shape) != expected or teacher.shape[-1] != self.patch_out_dim:
            raise ValueError(
                f"iBOTPatchLoss expects teacher (G*B, N, K={self.patch_out_dim}) and student of the same "
                f"shape (or (G*B, M, K) with an index (G*B, M), or (S, K) with a bool index), got "
                f"{tuple(student.shape)} and {tuple(teacher.shape)}"
                + ("" if index is None else f", index {tuple(index.shape)}")
            )
        if masks.shape != teacher.shape[:2] or masks.dtype != torch.bool:
            raise ValueError(
                f"masks must be bool of shape {tuple(teacher.shape[:2])}, got {masks.dtype} "
                f"{tuple(masks.shape)}"
            )


class iBOTLossTerms(NamedTuple):
    """The total iBOT loss and its terms (for logging); ``koleo`` only with a KoLeo term."""

    total: Tensor
    cls: Tensor
    patch: Tensor
    koleo: Tensor | None = None


class iBOTLoss(nn.Module):
    """The iBOT objective ``lambda_cls * L_[CLS] + lambda_patch * L_MIM`` (Zhou et al., ICLR 2022).

    ``L_[CLS]`` is :class:`DINOLoss` over pairs of different views and ``L_MIM`` is
    :class:`iBOTPatchLoss` on masked tokens of the same view; each keeps its own centre
    (``cls.center`` and ``patch.center`` in the state dict).

    Args:
        out_dim: [CLS] head output size.
        patch_out_dim: patch head output size.
        n_global: number of global crops.
        n_local: number of local crops.
        student_temp: student temperature for both terms.
        center_momentum: EMA momentum for both centres.
        lambda_cls: weight of the [CLS] term.
        lambda_patch: weight of the patch term.
        centering: ``"ema"`` or ``"sinkhorn"`` for both terms (see :class:`DINOLoss`).
    """

    def __init__(
        self,
        out_dim: int,
        patch_out_dim: int,
        n_global: int = 2,
        n_local: int = 10,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        lambda_cls: float = 1.0,
        lambda_patch: float = 1.0,
        centering: str = "ema",
    ) -> None:
        super().__init__()
        self.cls = DINOLoss(out_dim, n_global, n_local, student_temp, center_momentum, centering)
        self.patch = iBOTPatchLoss(patch_out_dim, student_temp, center_momentum, centering)
        self.lambda_cls = lambda_cls
        self.lambda_patch = lambda_patch

    def forward(
        self,
        student_cls: Tensor,
        teacher_cls: Tensor,
        student_patch: Tensor,
        teacher_patch: Tensor,
        masks: Tensor,
        teacher_temp: float | Tensor,
        teacher_patch_temp: float | Tensor | None = None,
        patch_index: Tensor | None = None,
    ) -> iBOTLossTerms:
        """Compute both terms; shapes as in :class:`DINOLoss` and :class:`iBOTPatchLoss`.

        ``teacher_patch_temp`` defaults to ``teacher_temp``; ``patch_index`` is
        :class:`iBOTPatchLoss`'s ``index`` (student patch outputs at those positions only).
        """
        patch_temp = teacher_temp if teacher_patch_temp is None else teacher_patch_temp
        cls_loss = self.cls(student_cls, teacher_cls, teacher_temp)
        patch_loss = self.patch(student_patch, teacher_patch, masks, patch_temp, patch_index)
        total = self.lambda_cls * cls_loss + self.lambda_patch * patch_loss
        return iBOTLossTerms(total, cls_loss, patch_loss)
