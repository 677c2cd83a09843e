"""Tiny checkpoints in our training format for the export, hub and attention tests (no training run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pretrain.checkpoint import FORMAT
from pretrain.models import create_model


def write_checkpoint(path: Path, name: str = "vit_pico", step: int = 7, config: dict | None = None,
                     **kwargs: Any) -> tuple[Path, torch.nn.Module, torch.nn.Module]:
    """Write ``{"format", "model", "teacher", "student", "config", "step"}`` with two random backbones.

    Returns:
        (the file, the teacher in eval mode, the student in eval mode).
    """
    kwargs = {"patch_size": 8, "img_size": 32, **kwargs}
    torch.manual_seed(1)
    teacher = create_model(name, **kwargs).eval()
    student = create_model(name, **kwargs).eval()
    recipe = config or {"loss": {"method": "ibot"}, "mask": {"strategy": "attmask_high"},
                        "data": {"dataset": "fashion_mnist", "batch_size": 128}, "run": {"seed": 0}}
    ckpt = {"format": FORMAT, "model": {"name": name, "kwargs": dict(teacher.model_kwargs)},
            "teacher": {f"backbone.{k}": v for k, v in teacher.state_dict().items()},
            "student": {f"backbone.{k}": v for k, v in student.state_dict().items()},
            "config": recipe, "step": step, "epoch": 0}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path, teacher, student
