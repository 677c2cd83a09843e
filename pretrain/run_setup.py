"""Everything a pretraining run holds, built from the config, and its checkpoint state."""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

from pretrain.builder import (backbone_kwargs, build_losses, build_masker_from, build_network,
                              build_optimizer_from, build_schedules, validate)
from pretrain.checkpoint import FORMAT, atomic_save, rng_state, set_rng_state
from pretrain.config import PretrainConfig, to_dict
from pretrain.data_builder import build_pretrain_data
from pretrain.distributed import DistInfo
from pretrain.models.teacher_student import EMATeacher
from pretrain.step import StudentCall, autocast_context

log = logging.getLogger(__name__)


def configure_logging(output_dir: Path, is_main: bool) -> None:
    """INFO to stderr and ``<output_dir>/train.log`` on rank 0, warnings only elsewhere."""
    output_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO if is_main else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    if not any(getattr(h, "_attmask", False) for h in root.handlers):
        # keep a console handler the caller (e.g. launchers.demo) already installed
        handlers = [] if root.handlers else [logging.StreamHandler(sys.stderr)]
        if is_main:
            handlers.append(logging.FileHandler(output_dir / "train.log"))
        for h in handlers:
            h.setFormatter(fmt)
            h._attmask = True  # type: ignore[attr-defined]
            root.addHandler(h)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@dataclass
class TrainState:
    """Where the run is, plus the device-side non-finite counters (read only when logging)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    last_knn: Optional[float] = None
    last_ckpt_step: int = -1
    _skipped: Any = 0
    _consecutive: Any = 0
    _max_consecutive: Any = 0

    def track_finite(self, finite: torch.Tensor) -> None:
        bad = (~finite).long()
        self._skipped = bad + self._skipped
        self._consecutive = (bad * (self._consecutive + 1))
        self._max_consecutive = torch.maximum(torch.as_tensor(self._max_consecutive,
                                                              device=bad.device), self._consecutive)

    @property
    def skipped(self) -> int:
        return int(self._skipped)

    def max_consecutive_nonfinite(self) -> int:
        return int(self._max_consecutive)


@dataclass
class Run:
    """The built objects of one run (see :func:`build_run`)."""

    cfg: PretrainConfig
    device: torch.device
    world_size: int
    loader: Any
    student: nn.Module
    teacher: nn.Module
    student_call: nn.Module
    ema: EMATeacher
    losses: nn.ModuleDict
    masker: Any
    optimizer: torch.optim.Optimizer
    scaler: Optional[torch.amp.GradScaler]
    schedules: Any
    mask_generator: torch.Generator
    amp: str
    mean: tuple
    std: tuple
    knn: Any = None
    steps_per_epoch: int = field(default=0)

    @property
    def total_steps(self) -> int:
        return self.cfg.optim.epochs * self.steps_per_epoch

    def autocast(self):
        return autocast_context(self.device, self.amp)

    def state_dict(self, state: TrainState) -> Dict[str, Any]:
        return {
            "model": {"name": self.cfg.model.name,
                      "kwargs": {**backbone_kwargs(self.cfg, 0.0)}},
            "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "loss": self.losses.state_dict(), "step": state.step, "epoch": state.epoch,
            "batch_in_epoch": state.batch_in_epoch, "nonfinite_steps": state.skipped,
            "world_size": self.world_size,
            "rng": {**rng_state(), "mask": self.mask_generator.get_state()},
            "config": to_dict(self.cfg),
        }

    def load_state(self, ckpt: Dict[str, Any], state: TrainState) -> None:
        self.student.load_state_dict(ckpt["student"])
        self.teacher.load_state_dict(ckpt["teacher"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.losses.load_state_dict(ckpt["loss"])
        state.step, state.epoch = ckpt["step"], ckpt["epoch"]
        state.batch_in_epoch = ckpt["batch_in_epoch"]
        state.last_ckpt_step = state.step
        state._skipped = ckpt.get("nonfinite_steps", 0)
        set_rng_state(ckpt["rng"])
        self.mask_generator.set_state(ckpt["rng"]["mask"])

    def save_final(self, path: Path, state: TrainState) -> Path:
        return atomic_save({"format": FORMAT, **self.state_dict(state)}, path)


def _resolve_amp(amp: str, device: torch.device) -> str:
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "none"
    if amp not in ("bf16", "fp16", "none"):
        raise ValueError(f"run.amp={amp!r}: choose auto, bf16, fp16 or none")
    return amp


def build_run(cfg: PretrainConfig, device: torch.device, dist: DistInfo) -> Run:
    """Data, networks, EMA teacher, losses, masking, optimiser and schedules of a run."""
    validate(cfg)
    loader, spec, knn = build_pretrain_data(cfg, dist)
    student = build_network(cfg, student=True).to(device)
    teacher = build_network(cfg, student=False).to(device)
    ema = EMATeacher(student, teacher)
    losses = build_losses(cfg).to(device)
    masker = build_masker_from(cfg) if cfg.loss.method == "ibot" and cfg.mask.strategy != "none" \
        else None
    total_batch = cfg.data.batch_size * dist.world_size
    optimizer = build_optimizer_from(cfg, student, total_batch)
    amp = _resolve_amp(cfg.run.amp, device)
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    if cfg.run.compile:
        student.backbone.compile()
        teacher.backbone.compile()
    call: nn.Module = StudentCall(student)
    if dist.world_size > 1:
        call = nn.parallel.DistributedDataParallel(
            call, device_ids=[device.index] if device.type == "cuda" else None)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed * 1000 + dist.rank)
    log.info("student: %.1fM parameters; %d steps/epoch",
             sum(p.numel() for p in student.parameters()) / 1e6, len(loader))
    return Run(cfg=cfg, device=device, world_size=dist.world_size, loader=loader, student=student,
               teacher=teacher, student_call=call, ema=ema, losses=losses, masker=masker,
               optimizer=optimizer, scaler=scaler,
               schedules=build_schedules(cfg, len(loader), total_batch),
               mask_generator=gen, amp=amp, mean=tuple(spec.mean), std=tuple(spec.std), knn=knn,
               steps_per_epoch=len(loader))
