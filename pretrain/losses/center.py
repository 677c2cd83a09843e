"""Running centre of the teacher's outputs, shared by the DINO and iBOT patch losses.

Centering (subtracting an EMA of the teacher's mean output before the sharpened softmax) is
what keeps the self-distillation from collapsing onto one prototype (Caron et al., "Emerging
Properties in Self-Supervised Vision Transformers", ICCV 2021, section 3.1).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


@torch.no_grad()
def ema_update_center_(center: Tensor, batch_mean: Tensor, momentum: float) -> None:
    """Update ``center`` in place: ``center = m * center + (1 - m) * mean_over_all_ranks``.

    Args:
        center: buffer to update, any shape broadcastable with ``batch_mean``.
        batch_mean: this rank's mean teacher output, same shape as ``center``. It is
            all-reduced (averaged over ranks, which all hold equally sized batches) when
            ``torch.distributed`` is initialised; this is a device-side collective, the host
            never waits on a value.
        momentum: EMA momentum ``m`` (0.9 in DINO and iBOT).
    """
    batch_mean = batch_mean.detach().to(dtype=torch.float32).clone()
    if _distributed():
        dist.all_reduce(batch_mean)
        batch_mean.div_(dist.get_world_size())
    center.mul_(momentum).add_(batch_mean.to(center.dtype), alpha=1.0 - momentum)


CENTERINGS = ("ema", "sinkhorn")


def check_centering(centering: str) -> None:
    """Raise ValueError unless ``centering`` is one of :data:`CENTERINGS`."""
    if centering not in CENTERINGS:
        raise ValueError(f"centering={centering!r}: choose one of {', '.join(CENTERINGS)}")


def check_momentum(momentum: float) -> None:
    """Raise ValueError unless ``0 <= momentum <= 1``."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"center_momentum must be in [0, 1], got {momentum}; DINO/iBOT use 0.9")


def check_temperature(name: str, temp: float) -> None:
    """Raise ValueError unless ``temp > 0`` (only for host floats, never for tensors)."""
    if isinstance(temp, (int, float)) and not temp > 0:
        raise ValueError(f"{name} must be > 0, got {temp}")
