"""The fine-tuning loop: per-step warm-up + cosine learning rate, mixup / CutMix, checkpoints, resume.

Checkpoints are pretraining's (:mod:`pretrain.checkpoint`: atomic writes, ``step_*.pt`` under
``<output_dir>/checkpoints``, the newest loadable one picked on start), and stop requests are
pretraining's (:mod:`pretrain.preemption`: SIGTERM / SIGUSR2 -> checkpoint after the current step,
then :class:`~pretrain.preemption.Preempted`). Every step reseeds torch / numpy from (seed, step)
and the data order and augmentation are keyed by (seed, epoch, position), so a resumed run computes
the same weights as an uninterrupted one (bit for bit on the CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from downstream.finetune.layer_decay import set_lr_
from downstream.finetune.mixup import MixupCutmix, soft_cross_entropy
from pretrain.checkpoint import latest_good_checkpoint, save_step_checkpoint
from pretrain.preemption import REQUESTS
from pretrain.state import reseed

log = logging.getLogger(__name__)


@dataclass
class LoopSpec:
    """What the loop needs besides the model: lengths, schedule and bookkeeping."""

    epochs: int
    steps_per_epoch: int
    lr: np.ndarray  # (epochs * steps_per_epoch,) per-step base learning rate
    seed: int = 0
    max_steps: int = 0  # > 0: stop (with a checkpoint) after this many steps
    clip_grad: float = 0.0  # > 0: clip the global gradient norm
    ckpt_every_steps: int = 500
    keep_last: int = 2
    log_every_steps: int = 20


def restore(output_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load the newest good checkpoint of ``output_dir`` into model and optimizer; its step (0: none)."""
    found = latest_good_checkpoint(output_dir)
    if found is None:
        return 0
    path, ckpt = found
    if "classifier" not in ckpt:
        raise ValueError(f"{path} is not a fine-tuning checkpoint; use another run.output_dir")
    model.load_state_dict(ckpt["classifier"])
    optimizer.load_state_dict(ckpt["optimizer"])
    log.info("resuming from %s (step %d)", path, ckpt["step"])
    return int(ckpt["step"])


def _save(output_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, spec: LoopSpec) -> None:
    save_step_checkpoint({"step": step, "classifier": model.state_dict(), "optimizer": optimizer.state_dict()},
                         output_dir, spec.keep_last)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               mix: MixupCutmix, rng: np.random.Generator, clip_grad: float) -> torch.Tensor:
    """One AdamW step on a mixed batch; returns the loss (0-d, on the device)."""
    images, targets = mix(images, labels, rng)
    loss = soft_cross_entropy(model(images), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    optimizer.step()
    return loss.detach()


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Callable[[int, int], Any], mix: MixupCutmix,
        spec: LoopSpec, output_dir: Path, device: torch.device, on_epoch_end: Callable[[int], None],
        writer: Any = None) -> int:
    """Train from the newest checkpoint of ``output_dir`` to the end (or ``max_steps``); returns the last step.

    Args:
        batches: ``batches(epoch, start)`` -> iterable of (images (B, 3, H, W), labels (B,)) from batch ``start``.
        on_epoch_end: Called with the finished epoch's number (validation, logging).
        writer: A TensorBoard ``SummaryWriter`` (train/loss, train/lr) or None.

    Raises:
        Preempted: A stop was requested (signal or launcher); the checkpoint is written.
    """
    step = restore(output_dir, model, optimizer)
    total = spec.epochs * spec.steps_per_epoch
    stop_at = min(total, spec.max_steps) if spec.max_steps > 0 else total
    generator = torch.Generator()
    model.train()
    while step < stop_at:
        epoch, start = divmod(step, spec.steps_per_epoch)
        for images, labels in batches(epoch, start):
            reseed(spec.seed, 0, step, generator)  # drop path: the same draws as an uninterrupted run
            set_lr_(optimizer, float(spec.lr[step]))
            rng = np.random.default_rng([spec.seed, step])
            loss = train_step(model, optimizer, images.to(device), labels.to(device), mix, rng, spec.clip_grad)
            step += 1
            if writer is not None and step % spec.log_every_steps == 0:
                writer.add_scalar("train/loss", float(loss), step)
                writer.add_scalar("train/lr", float(spec.lr[step - 1]), step)
            request = REQUESTS.poll(1, device, step, 1)
            if request or step % spec.ckpt_every_steps == 0 or step == stop_at:
                _save(output_dir, model, optimizer, step, spec)
                REQUESTS.answered(step)  # raises Preempted after a stop request
            if step == stop_at:
                break
        if step % spec.steps_per_epoch == 0:
            on_epoch_end(step // spec.steps_per_epoch - 1)
    return step
