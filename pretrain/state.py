"""The typed state of a pretraining run, and what a checkpoint holds: one place.

:class:`Run` is everything built once from the config (networks, optimiser, loader, ...);
:class:`TrainState` is where the loop is. :func:`checkpoint_state` / :func:`restore` define the
checkpoint contents (see ``pretrain.checkpoint`` for writing and finding the files):
student, teacher, optimizer, scaler, loss centres, position, non-finite count, world size,
the resolved config, the architecture (``model``: name + ``create_model`` kwargs) and the RNG
state of EVERY rank (torch, numpy, python, CUDA, mask generator), so a resumed multi-process
run continues each rank's random streams.
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pretrain.amp import autocast_context
from pretrain.checkpoint import FORMAT, atomic_save, estimate_bytes, rng_state, set_rng_state
from pretrain.config import PretrainConfig
from pretrain.configuration import to_dict
from pretrain.distributed import DistInfo, all_gather_objects
from pretrain.models.teacher_student import EMATeacher, MultiCropNetwork
from pretrain.optim import Schedules

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where the run is, plus the device-side non-finite counters (read only when logging)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    last_knn: float | None = None
    last_ckpt_step: int = -1
    _skipped: Any = 0
    _consecutive: Any = 0
    _max_consecutive: Any = 0

    def track_finite(self, finite: torch.Tensor) -> None:
        """Counts a non-finite step on the device (no host sync)."""
        bad = (~finite).long()
        self._skipped = bad + self._skipped
        self._consecutive = bad * (self._consecutive + 1)
        self._max_consecutive = torch.maximum(torch.as_tensor(self._max_consecutive, device=bad.device),
                                              self._consecutive)

    @property
    def skipped(self) -> int:
        """Steps skipped so far because their loss or gradient was not finite."""
        return int(self._skipped)

    def max_consecutive_nonfinite(self) -> int:
        return int(self._max_consecutive)


@dataclass
class Run:
    """The built objects of one run (made by :func:`pretrain.build.build_run`)."""

    cfg: PretrainConfig
    device: torch.device
    dist: DistInfo
    output_dir: Path
    loader: Any
    student: MultiCropNetwork
    teacher: MultiCropNetwork
    student_call: nn.Module  # StudentCall(student), DDP-wrapped with several ranks
    ema: EMATeacher
    loss: nn.Module  # iBOTLoss, or DINOObjective for loss.method=dino
    masker: Any  # pretrain.masking.Masker or None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    schedules: Schedules
    mask_generator: torch.Generator
    amp: str  # resolved: bf16 | fp16 | none
    mean: tuple[float, ...]
    std: tuple[float, ...]
    model_spec: dict[str, Any]  # {"name": registry name, "kwargs": create_model kwargs}
    steps_per_epoch: int
    knn: Any = None  # pretrain.online_knn.KnnMonitor on rank 0 when enabled
    num_samples: int | None = None  # training samples per epoch (all ranks), recorded to check resumes

    @property
    def world_size(self) -> int:
        return self.dist.world_size

    @property
    def total_steps(self) -> int:
        return self.cfg.optim.epochs * self.steps_per_epoch

    @property
    def skipped_images(self) -> int:
        """Unreadable images skipped by this rank's data set so far (0 where not counted)."""
        return int(getattr(getattr(self.loader, "dataset", None), "skipped", 0) or 0)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast_context(self.device, self.amp)


def _local_rng(run: Run) -> dict[str, Any]:
    return {**rng_state(), "mask": run.mask_generator.get_state()}


def checkpoint_state(run: Run, state: TrainState) -> dict[str, Any]:
    """Everything a checkpoint holds. Collective with several ranks (gathers every rank's RNG)."""
    per_rank = all_gather_objects(_local_rng(run))
    return {
        "format": FORMAT,
        "model": run.model_spec,
        "student": run.student.state_dict(), "teacher": run.teacher.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else {},
        "loss": run.loss.state_dict(), "step": state.step, "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch, "nonfinite_steps": state.skipped,
        "world_size": run.world_size,
        "rng": per_rank[0],  # rank 0's (what checkpoints before per-rank states held)
        "rng_per_rank": per_rank,
        "config": to_dict(run.cfg),
        "num_samples": run.num_samples,
    }


def checkpoint_bytes(run: Run) -> int:
    """Bytes one checkpoint of ``run`` will take, estimated before the first step.

    Student, teacher and loss state as they are, plus AdamW's two moments per trainable parameter
    (its state appears only at the first step), with :func:`pretrain.checkpoint.estimate_bytes`'s
    per-tensor and per-file margins.
    """
    tensors = {"student": run.student.state_dict(), "teacher": run.teacher.state_dict(), "loss": run.loss.state_dict()}
    trainable = [p for p in run.student.parameters() if p.requires_grad]
    moments = sum(2 * (p.numel() * 4 + 1024) for p in trainable)  # exp_avg and exp_avg_sq, float32
    return estimate_bytes(tensors) + moments


def reseed(seed: int, rank: int, step: int, generator: torch.Generator) -> None:
    """Deterministic fresh streams for (seed, rank, step): torch, numpy, python, mask generator."""
    words = np.random.SeedSequence([seed, rank, step]).generate_state(2, dtype=np.uint64)
    a, b = int(words[0] >> np.uint64(1)), int(words[1] >> np.uint64(1))
    random.seed(a)
    np.random.seed(a % 2**32)
    torch.manual_seed(a)
    generator.manual_seed(b)


def restore(run: Run, state: TrainState, ckpt: dict[str, Any]) -> None:
    """Loads a checkpoint of :func:`checkpoint_state` into ``run`` and ``state``.

    Each rank restores its own RNG state. If the world size changed (or the checkpoint predates
    per-rank states and had several ranks), the streams are re-seeded deterministically from
    (seed, rank, step) and a warning says so: the run continues, but not bit for bit.
    """
    run.student.load_state_dict(ckpt["student"])
    run.teacher.load_state_dict(ckpt["teacher"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if run.scaler is not None and ckpt["scaler"]:
        run.scaler.load_state_dict(ckpt["scaler"])
    run.loss.load_state_dict(ckpt["loss"])
    state.step, state.epoch = ckpt["step"], ckpt["epoch"]
    state.batch_in_epoch = ckpt["batch_in_epoch"]
    state.last_ckpt_step = state.step
    state._skipped = ckpt.get("nonfinite_steps", 0)
    saved_world = int(ckpt.get("world_size", 1))
    per_rank = ckpt.get("rng_per_rank") or ([ckpt["rng"]] if saved_world == 1 else None)
    if per_rank is not None and len(per_rank) == run.world_size:
        rng = per_rank[run.dist.rank]
        set_rng_state(rng)
        run.mask_generator.set_state(rng["mask"])
    else:
        if run.dist.is_main:
            log.warning("the checkpoint was written by %d process(es), this run has %d: random streams "
                        "re-seeded from (run.seed, rank, step=%d); the run continues, not bit for bit",
                        saved_world, run.world_size, state.step)
        reseed(run.cfg.run.seed, run.dist.rank, state.step, run.mask_generator)


def save_final(run: Run, state: TrainState, path: Path) -> Path:
    """The final ``checkpoint.pt`` (same contents as a step checkpoint). Collective."""
    payload = checkpoint_state(run, state)
    return atomic_save(payload, path) if run.dist.is_main else path
