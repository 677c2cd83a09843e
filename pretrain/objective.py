"""The objective that trains: iBOT's (``pretrain.losses.iBOTLoss``) or DINO's [CLS]-only one.

Both take the same call, so the training step calls one module and does no loss arithmetic of
its own: the loss that trains is the loss that is tested in ``tests/pretrain/losses``.
"""

from __future__ import annotations

from torch import Tensor, nn

from pretrain.losses import DINOLoss
from pretrain.losses.ibot import iBOTLoss, iBOTLossTerms
from pretrain.losses.koleo import koleo_loss


class DINOObjective(nn.Module):
    """DINO (Caron et al., ICCV 2021): ``lambda_cls * L_[CLS]`` with the :class:`iBOTLoss` call.

    Its state dict holds ``cls.center`` like iBOTLoss's, so checkpoints keep their keys.

    Args:
        out_dim: head output size ``K``.
        n_global, n_local: numbers of global and local crops.
        student_temp: student temperature.
        center_momentum: EMA momentum of the centre.
        lambda_cls: weight of the [CLS] term.
        centering: ``"ema"`` or ``"sinkhorn"`` (see :class:`~pretrain.losses.DINOLoss`).
    """

    def __init__(self, out_dim: int, n_global: int, n_local: int, student_temp: float = 0.1,
                 center_momentum: float = 0.9, lambda_cls: float = 1.0, centering: str = "ema") -> None:
        super().__init__()
        self.cls = DINOLoss(out_dim, n_global, n_local, student_temp, center_momentum, centering)
        self.lambda_cls = lambda_cls

    def forward(self, student_cls: Tensor, teacher_cls: Tensor, teacher_temp: float | Tensor = 0.07) -> iBOTLossTerms:
        """``student_cls`` ((G+L)*B, K), ``teacher_cls`` (G*B, K) -> terms with a zero patch term."""
        cls = self.cls(student_cls, teacher_cls, teacher_temp)
        return iBOTLossTerms(self.lambda_cls * cls, cls, cls.new_zeros(()))


class KoLeoObjective(nn.Module):
    """An objective plus DINOv2's KoLeo term on the student's pooled vectors of each global crop.

    ``total = objective.total + weight * sum_g koleo(pooled_g)`` (Oquab et al., TMLR 2024: weight
    0.1, on the [CLS] token after the backbone's final norm; here the pooled vector, so SimPool
    and GAP models get it too). The wrapped objective's state dict keys are kept (``cls.center``,
    ``patch.center``): checkpoints of either load into the other.

    Args:
        objective: ``iBOTLoss`` or :class:`DINOObjective`.
        n_global: number of global crops (the pooled vectors arrive crop-major).
        weight: weight of the KoLeo term (> 0).
    """

    def __init__(self, objective: nn.Module, n_global: int, weight: float) -> None:
        super().__init__()
        if not weight > 0:
            raise ValueError(f"KoLeo weight must be > 0, got {weight}")
        self.objective = objective
        self.n_global = n_global
        self.weight = weight

    def forward(self, *args, student_pooled: Tensor, **kwargs) -> iBOTLossTerms:
        """The objective's arguments, plus ``student_pooled`` (G*B, D) of the global crops."""
        terms = self.objective(*args, **kwargs)
        koleo = sum(koleo_loss(p) for p in student_pooled.chunk(self.n_global))
        return iBOTLossTerms(terms.total + self.weight * koleo, terms.cls, terms.patch, koleo.detach())

    # the wrapped objective's keys, unprefixed
    def state_dict(self, *args, **kwargs):
        return self.objective.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.objective.load_state_dict(state_dict, strict=strict, assign=assign)


def build_objective(method: str, out_dim: int, patch_out_dim: int, n_global: int, n_local: int,
                    student_temp: float, center_momentum: float, lambda_cls: float,
                    lambda_patch: float, centering: str = "ema", koleo_weight: float = 0.0) -> nn.Module:
    """``iBOTLoss`` for ``method="ibot"``, :class:`DINOObjective` for ``"dino"``, wrapped in
    :class:`KoLeoObjective` when ``koleo_weight > 0``."""
    if method == "ibot":
        objective = iBOTLoss(out_dim, patch_out_dim, n_global=n_global, n_local=n_local,
                             student_temp=student_temp, center_momentum=center_momentum, lambda_cls=lambda_cls,
                             lambda_patch=lambda_patch, centering=centering)
    elif method == "dino":
        objective = DINOObjective(out_dim, n_global, n_local, student_temp, center_momentum, lambda_cls, centering)
    else:
        raise ValueError(f"loss.method={method!r}: choose ibot or dino")
    return KoLeoObjective(objective, n_global, koleo_weight) if koleo_weight > 0 else objective
