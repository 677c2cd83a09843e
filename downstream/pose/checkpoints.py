"""Pose-head checkpoints: atomic epoch files under ``<output_dir>/checkpoints``, newest good one on resume.

Each file holds the head, the learned loss weights s_x / s_q, optimizer and scheduler state,
the epoch, the scene names, the token grid and the head configuration, so
:mod:`downstream.pose.test` can rebuild the head without the training config.
"""

from __future__ import annotations

import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrain.checkpoint import atomic_save, newest_loadable, numbered_files, prune

FORMAT = "attmask-ssl/pose-head/1"
# What a head file written before these keys existed was built with (read by downstream.pose.test).
LEGACY_HEAD_SPEC = {"pos_table": "per_branch", "init": "xavier_all"}
LEGACY_INPUTS = {"transform": "short_side_crop", "resize": 0}
_EPOCH_FILE = re.compile(r"^epoch_(\d{4,})\.pt$")


def plain(spec: Any) -> dict[str, Any]:
    """A dataclass or an OmegaConf node -> a dict of plain values (weights_only-loadable)."""
    if is_dataclass(spec) and not isinstance(spec, type):
        return asdict(spec)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(spec, resolve=True)


def save_head_checkpoint(out_dir: str | Path, epoch: int, head: nn.Module, loss: nn.Module, opt, sched, cfg,
                         scene_names: list[str], grid_hw: tuple[int, int], in_dim: int,
                         backbone: nn.Module | None = None, mean_pose: dict | None = None) -> Path:
    """Write ``checkpoints/epoch_XXXX.pt`` and ``pose_head.pt`` atomically; keep the newest ``cfg.keep_last``.

    ``mean_pose``: the training set's per-scene mean poses (:func:`downstream.pose.baseline.scene_mean_poses`),
    kept so :mod:`downstream.pose.test` can report the mean-pose baseline on other test data.
    """
    state: dict[str, Any] = {"format": FORMAT, "epoch": epoch, "head": head.state_dict(), "loss": loss.state_dict(),
                             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                             "scene_names": list(scene_names), "grid_hw": list(grid_hw), "in_dim": int(in_dim),
                             "head_spec": plain(cfg.head), "image_size": int(cfg.data.image_size),
                             "backbone_checkpoint": cfg.checkpoint,
                             "inputs": {"transform": cfg.data.transform, "resize": int(cfg.data.resize)}}
    if mean_pose is not None:
        state["mean_pose"] = {k: [[float(x) for x in row] for row in v] for k, v in mean_pose.items()}
    if backbone is not None:
        state["backbone"] = backbone.state_dict()
    folder = Path(out_dir) / "checkpoints"
    path = atomic_save(state, folder / f"epoch_{epoch:04d}.pt")
    atomic_save(state, Path(out_dir) / "pose_head.pt")
    prune(numbered_files(folder, _EPOCH_FILE), cfg.keep_last)
    return path


def load_head_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a pose-head checkpoint or raise ValueError naming the file and the fix."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: both mean unusable
        raise ValueError(f"cannot read pose-head checkpoint {path} ({type(exc).__name__}: {exc}); delete it to "
                         "resume from an older one") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pose-head checkpoint ({FORMAT}); give the pose_head.pt that "
                         "python -m downstream.pose.train wrote")
    return state


def latest_head_checkpoint(out_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest loadable ``epoch_XXXX.pt``, skipping broken ones with a warning; None if none."""
    return newest_loadable(numbered_files(Path(out_dir) / "checkpoints", _EPOCH_FILE), load_head_checkpoint, "epoch")
