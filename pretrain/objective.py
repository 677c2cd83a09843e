"""The objective that trains: iBOT's (``pretrain.losses.iBOTLoss``) or DINO's [CLS]-only one.

Both take the same call, so the training step calls one module and does no loss arithmetic of
its own: the loss that trains is the loss that is tested in ``tests/pretrain/losses``.
"""

from __future__ import annotations

from torch import Tensor, nn

from pretrain.losses import DINOLoss
from pretrain.losses.ibot import iBOTLoss, iBOTLossTerms


class DINOObjective(nn.Module):
    """DINO (Caron et al., ICCV 2021): ``lambda_cls * L_[CLS]`` with the :class:`iBOTLoss` call.

    Its state dict holds ``cls.center`` like iBOTLoss's, so checkpoints keep their keys.

    Args:
        out_dim: head output size ``K``.
        n_global, n_local: numbers of global and local crops.
        student_temp: student temperature.
        center_momentum: EMA momentum of the centre.
        lambda_cls: weight of the [CLS] term.
    """

    def __init__(self, out_dim: int, n_global: int, n_local: int, student_temp: float = 0.1,
                 center_momentum: float = 0.9, lambda_cls: float = 1.0) -> None:
        super().__init__()
        self.cls = DINOLoss(out_dim, n_global, n_local, student_temp, center_momentum)
        self.lambda_cls = lambda_cls

    def forward(self, student_cls: Tensor, teacher_cls: Tensor, teacher_temp: float | Tensor = 0.07) -> iBOTLossTerms:
        """``student_cls`` ((G+L)*B, K), ``teacher_cls`` (G*B, K) -> terms with a zero patch term."""
        cls = self.cls(student_cls, teacher_cls, teacher_temp)
        return iBOTLossTerms(self.lambda_cls * cls, cls, cls.new_zeros(()))


def build_objective(method: str, out_dim: int, patch_out_dim: int, n_global: int, n_local: int,
                    student_temp: float, center_momentum: float, lambda_cls: float,
                    lambda_patch: float) -> nn.Module:
    """``iBOTLoss`` for ``method="ibot"``, :class:`DINOObjective` for ``"dino"``."""
    if method == "ibot":
        return iBOTLoss(out_dim, patch_out_dim, n_global=n_global, n_local=n_local, student_temp=student_temp,
                        center_momentum=center_momentum, lambda_cls=lambda_cls, lambda_patch=lambda_patch)
    if method == "dino":
        return DINOObjective(out_dim, n_global, n_local, student_temp, center_momentum, lambda_cls)
    raise ValueError(f"loss.method={method!r}: choose ibot or dino")
