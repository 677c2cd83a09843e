"""Optimizer, parameter groups, schedules and gradient handling for DINO/iBOT pretraining.

Recipe (Caron et al., ICCV 2021; Zhou et al., ICLR 2022): AdamW, lr ``5e-4 * batch / 256`` with
linear warm-up then cosine decay to 1e-6, weight decay cosine 0.04 -> 0.4 (none on biases,
norms and tokens), teacher momentum cosine 0.996 -> 1, teacher temperature warm-up
0.04 -> 0.07, gradient clipping at 3.0, last head layer frozen during the first epoch.
Schedules are per step and computed once as numpy arrays; the step indexes them on the host
(:class:`Schedules`, built by :func:`make_schedules`). The default ``reference`` schedules are
DINO's ``cosine_scheduler`` and its per-epoch teacher temperature; ``exact`` is ours (cosine
ending exactly at the final value, temperature per step).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

# Parameters whose names contain one of these are embeddings/tokens: decaying them towards 0
# only hurts (DINO/timm exclude them too), whatever their rank.
NO_DECAY_NAME_PARTS = ("pos_embed", "cls_token", "mask_token", "reg_token")


def _no_decay(name: str, param: Tensor) -> bool:
    return param.ndim <= 1 or name.endswith(".bias") or any(p in name for p in NO_DECAY_NAME_PARTS)


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed and a non-decayed group.

    No decay on biases, normalisation weights and every other 0-/1-D parameter, nor on
    position embeddings and the [CLS] / mask / register tokens (matched by name). Frozen
    parameters (``requires_grad=False``) are left out. Groups carry a ``"name"``
    (``"decay"`` / ``"no_decay"``) and an ``"apply_wd"`` flag used by :func:`set_schedules_`.

    Args:
        module: the model (e.g. the student backbone + heads).
        weight_decay: initial weight decay of the decayed group.

    Returns:
        Two optimizer param-group dicts, always in this order: ``[decay, no_decay]`` (a group
        may be empty; AdamW accepts that), so index 0 is the decayed group.
    """
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (no_decay if _no_decay(name, param) else decay).append(param)
    return [
        {"name": "decay", "params": decay, "weight_decay": weight_decay, "apply_wd": True},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0, "apply_wd": False},
    ]


def cosine_schedule(
    base: float, final: float, total_steps: int, warmup_steps: int = 0, warmup_start: float = 0.0
) -> np.ndarray:
    """Per-step values: linear warm-up, then half-cosine from ``base`` to ``final``.

    Step ``t < warmup_steps`` is ``warmup_start + (base - warmup_start) * t / warmup_steps``;
    from ``warmup_steps`` on, the value follows
    ``final + (base - final) * (1 + cos(pi * s / (S - 1))) / 2`` with ``s`` counted from the end
    of warm-up over ``S`` cosine steps, so it starts at ``base`` and ends exactly at ``final``.

    Used for the learning rate (``cosine_schedule(lr, 1e-6, T, warmup)``), weight decay
    (``cosine_schedule(0.04, 0.4, T)``) and the teacher momentum
    (``cosine_schedule(0.996, 1.0, T)``).

    Args:
        base: value at the end of warm-up.
        final: value at the last step.
        total_steps: length of the schedule (epochs * steps per epoch).
        warmup_steps: linear warm-up steps (``<= total_steps``).
        warmup_start: value at step 0 of the warm-up.

    Returns:
        ``(total_steps,)`` float64 array.
    """
    if total_steps < 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps, got warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}"
        )
    warmup = warmup_start + (base - warmup_start) * np.arange(warmup_steps) / max(warmup_steps, 1)
    n_cos = total_steps - warmup_steps
    progress = np.arange(n_cos) / max(n_cos - 1, 1)
    cosine = final + 0.5 * (base - final) * (1.0 + np.cos(np.pi * progress))
    return np.concatenate([warmup, cosine]).astype(np.float64)


def teacher_temp_schedule(
    warmup_temp: float, temp: float, warmup_steps: int, total_steps: int
) -> np.ndarray:
    """Teacher temperature per step: linear ``warmup_temp -> temp`` over ``warmup_steps``, then flat.

    DINO/iBOT: 0.04 -> 0.07 over the first 30 epochs (warming up avoids early instability).

    Returns:
        ``(total_steps,)`` float64 array; it reaches ``temp`` at step ``warmup_steps``.
    """
    if total_steps < 0 or warmup_steps < 0:
        raise ValueError(f"steps must be >= 0, got warmup={warmup_steps}, total={total_steps}")
    steps = np.arange(total_steps)
    frac = np.minimum(steps / max(warmup_steps, 1), 1.0) if warmup_steps else np.ones(total_steps)
    return warmup_temp + (temp - warmup_temp) * frac


def reference_cosine_schedule(
    base: float, final: float, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0,
    warmup_start: float = 0.0,
) -> np.ndarray:
    """DINO's ``cosine_scheduler`` (facebookresearch/dino ``utils.py``), value for value.

    Warm-up: ``linspace(warmup_start, base, W)`` over ``W = warmup_epochs * steps_per_epoch``
    steps (its last step is already ``base``); then, over the ``C`` remaining steps,
    ``final + 0.5 * (base - final) * (1 + cos(pi * i / C))`` for ``i = 0 .. C - 1``, which stops
    one step short of ``final`` (see :func:`cosine_schedule` for the variant that ends on it).

    Returns:
        ``(epochs * steps_per_epoch,)`` float64 array.
    """
    total, warm = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    if total < 0 or not 0 <= warm <= total:
        raise ValueError(f"need 0 <= warmup_epochs <= epochs, got warmup_epochs={warmup_epochs}, epochs={epochs}")
    warmup = np.linspace(warmup_start, base, warm) if warm > 0 else np.array([])
    iters = np.arange(total - warm)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / max(len(iters), 1)))
    return np.concatenate((warmup, cosine)).astype(np.float64)


def reference_teacher_temp_schedule(
    warmup_temp: float, temp: float, warmup_epochs: int, epochs: int, steps_per_epoch: int
) -> np.ndarray:
    """DINO / iBOT teacher temperature: one value per EPOCH, expanded to steps.

    Per epoch: ``linspace(warmup_temp, temp, warmup_epochs)`` then ``temp``, so with a 30-epoch
    warm-up the value reaches ``temp`` at epoch 29 (DINO's ``DINOLoss.teacher_temp_schedule``,
    indexed by epoch). A warm-up longer than the run is cut at ``epochs``.

    Returns:
        ``(epochs * steps_per_epoch,)`` float64 array, constant within each epoch.
    """
    if epochs < 0 or warmup_epochs < 0:
        raise ValueError(f"epochs must be >= 0, got warmup_epochs={warmup_epochs}, epochs={epochs}")
    per_epoch = np.concatenate((np.linspace(warmup_temp, temp, warmup_epochs),
                                np.ones(max(epochs - warmup_epochs, 0)) * temp))[:epochs]
    return np.repeat(per_epoch, steps_per_epoch).astype(np.float64)


SCHEDULE_MODES = ("reference", "exact")


@dataclass
class Schedules:
    """Per-step values (host arrays: reading them never syncs the device)."""

    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray
    teacher_patch_temp: np.ndarray

    def at(self, step: int) -> dict[str, float]:
        """The values of ``step`` (the last ones past the end, e.g. with ``run.max_steps``)."""
        i = min(step, len(self.lr) - 1)
        return {"lr": float(self.lr[i]), "wd": float(self.wd[i]), "momentum": float(self.momentum[i]),
                "teacher_temp": float(self.teacher_temp[i]),
                "teacher_patch_temp": float(self.teacher_patch_temp[i])}


def make_schedules(
    *, epochs: int, steps_per_epoch: int, lr: float, min_lr: float, warmup_epochs: int,
    weight_decay: float, weight_decay_end: float, momentum_teacher: float,
    warmup_teacher_temp: float, teacher_temp: float, warmup_teacher_patch_temp: float,
    teacher_patch_temp: float, warmup_teacher_temp_epochs: int, mode: str = "reference",
) -> Schedules:
    """All schedules of a run.

    Args:
        lr: peak learning rate (already scaled by the total batch).
        mode: ``reference`` (DINO's ``cosine_scheduler``, temperatures per epoch) or ``exact``
            (:func:`cosine_schedule` ending exactly at the final values, temperatures per step).
        Others: as in ``pretrain.config.OptimConfig`` / ``LossConfig``.
    """
    total, spe = epochs * steps_per_epoch, steps_per_epoch
    if mode == "reference":
        def temps(warm: float, final: float) -> np.ndarray:
            return reference_teacher_temp_schedule(warm, final, warmup_teacher_temp_epochs, epochs, spe)

        return Schedules(
            lr=reference_cosine_schedule(lr, min_lr, epochs, spe, warmup_epochs),
            wd=reference_cosine_schedule(weight_decay, weight_decay_end, epochs, spe),
            momentum=reference_cosine_schedule(momentum_teacher, 1.0, epochs, spe),
            teacher_temp=temps(warmup_teacher_temp, teacher_temp),
            teacher_patch_temp=temps(warmup_teacher_patch_temp, teacher_patch_temp))
    if mode != "exact":
        raise ValueError(f"schedule mode {mode!r}: choose one of {SCHEDULE_MODES}")
    warm_temp_steps = warmup_teacher_temp_epochs * spe
    return Schedules(
        lr=cosine_schedule(lr, min_lr, total, warmup_steps=warmup_epochs * spe),
        wd=cosine_schedule(weight_decay, weight_decay_end, total),
        momentum=cosine_schedule(momentum_teacher, 1.0, total),
        teacher_temp=teacher_temp_schedule(warmup_teacher_temp, teacher_temp, warm_temp_steps, total),
        teacher_patch_temp=teacher_temp_schedule(warmup_teacher_patch_temp, teacher_patch_temp,
                                                 warm_temp_steps, total))


def set_schedules_(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Set this step's learning rate on every group and weight decay on the decayed groups."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_wd", True):
            group["weight_decay"] = weight_decay


def _params_with_grad(module: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    params = module.parameters() if isinstance(module, nn.Module) else module
    return [p for p in params if p.grad is not None]


CLIP_MODES = ("per_param", "global")


def clip_gradients_(module: nn.Module | Iterable[Tensor], max_norm: float, mode: str = "per_param") -> Tensor:
    """Clip gradients in place; return the pre-clip global L2 norm as a 0-d tensor.

    ``mode="per_param"`` (the default, ``optim.clip_mode``): each parameter's gradient is scaled by
    ``min(1, max_norm / (norm + 1e-6))`` on its own, the ``clip_gradients`` of the DINO / iBOT /
    AttMask code (same factors, computed on the device instead of with one ``.item()`` per
    parameter). ``mode="global"``: the norm of all gradients together is clipped to ``max_norm``
    (``clip_grad_norm_``, multi-tensor kernels where the device has them). Neither syncs with the host.

    Args:
        module: a module or an iterable of parameters.
        max_norm: maximal L2 norm (3.0 in DINO/iBOT); ``inf`` clips nothing.
        mode: ``"per_param"`` or ``"global"``.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"clip mode {mode!r}: choose one of {CLIP_MODES}")
    params = _params_with_grad(module)
    if not params:
        return torch.zeros(())
    if mode == "per_param":
        grads = [p.grad for p in params]
        norms = torch.stack(torch._foreach_norm(grads))  # (P,): one factor per parameter, in three kernels
        torch._foreach_mul_(grads, (max_norm / (norms + 1e-6)).clamp(max=1.0).unbind(0))
        return torch.linalg.vector_norm(norms)
    # foreach=None picks the fused multi-tensor path on CUDA and CPU and falls back elsewhere.
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=None)


def cancel_last_layer_grads_(module: nn.Module, step: int, freeze_steps: int) -> None:
    """Drop the gradients of the heads' ``last_layer`` while ``step < freeze_steps``.

    DINO freezes the weight-normalised output layer during the first epoch because letting it
    move early destabilises training. Setting ``grad = None`` also makes AdamW skip those
    parameters (no weight decay, no moment update) for those steps.
    """
    if step >= freeze_steps:
        return
    for name, param in module.named_parameters():
        if "last_layer" in name:
            param.grad = None


def build_optimizer(
    groups: list[dict[str, Any]],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW over ``groups`` (from :func:`param_groups`), fused wherever torch has the kernel.

    The fused kernel (CUDA, and CPU since torch 2.4) also reads ``optimizer.found_inf``, which
    lets the training step skip a non-finite update on the device without a host sync.

    Args:
        groups: optimizer param groups.
        lr: initial learning rate (the schedule overrides it every step).
        betas: AdamW betas.
        fused: force the fused kernel on/off; default: fused if this torch supports it here.
    """
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise ValueError("build_optimizer got no parameters to optimise (all frozen?)")
    if fused is not False:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError):
            if fused:
                raise
    return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)
