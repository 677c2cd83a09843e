"""Automatic mixed precision: the one place that turns ``run.amp`` into a dtype and a context.

``auto`` means bf16 on CUDA (no loss scaling needed) and full precision elsewhere; ``fp16``
adds a :class:`torch.amp.GradScaler` (see :func:`grad_scaler`).
"""

from __future__ import annotations

import contextlib

import torch

AMP_MODES = ("auto", "bf16", "fp16", "none")


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto``/``bf16``/``fp16``/``none`` -> the concrete mode on ``device`` (``bf16``/``fp16``/``none``)."""
    if amp not in AMP_MODES:
        raise ValueError(f"run.amp={amp!r}: choose one of {', '.join(AMP_MODES)}")
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "none"
    return amp


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on the device for a resolved ``amp``, or nothing for ``none``."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (its gradients underflow without one); None otherwise."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None
