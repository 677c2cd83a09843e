"""Test a trained pose head: per-scene errors, recall, scene accuracy and attention diagnostics.

Usage::

    python -m downstream.pose.test --head runs/pose/pose_head.pt data.root=DIR [--checkpoint BACKBONE]

Results (JSON): ``scenes.<name>`` median / mean position (m) and orientation (deg) errors,
recall at (0.25 m, 2 deg), (0.5 m, 5 deg), (5 m, 10 deg), scene accuracy; ``overall`` their
mean of medians (the papers' number), pooled recall and accuracy; ``attention.<branch>`` per
encoder layer: self-attention entropy (nats), QKA distance, query-region purity (docs/pose.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from downstream.backbone import ModelSpec, build_backbone
from downstream.eval_cli import parse_with_aliases
from downstream.pose.baseline import mean_pose_report
from downstream.pose.checkpoints import LEGACY_HEAD_SPEC, LEGACY_INPUTS, load_head_checkpoint
from downstream.pose.config import HeadSpec, PoseDataSpec, build_head
from downstream.pose.data import open_split
from downstream.pose.evaluation import evaluate, format_results, write_outputs
from downstream.pose.tokens import in_channels
from downstream.pose.transforms import PoseTransform
from downstream.settings import EvalSettings, check_float32_only
from pretrain.configuration import register_check
from pretrain.distributed import select_device
from pretrain.export.clean_exit import run_cleanly

__all__ = ["CONFIG", "PoseTestConfig", "main", "run"]


@dataclass
class PoseTestConfig(EvalSettings):
    """Test a pose head written by downstream.pose.train (``output`` default: <folder of head>/pose_test.json).

    ``data`` says which CSV / split / root to read; the image inputs (size, test transform) are the
    ones the head was trained with, read from its file (heads written before ``data.transform``
    existed: ``short_side_crop``).
    """

    head: str = ""  # pose_head.pt
    checkpoint: str = ""  # backbone; default: the one recorded in the head file
    model: ModelSpec = field(default_factory=ModelSpec)
    data: PoseDataSpec = field(default_factory=PoseDataSpec)
    diag_frames: int = 64
    neighbours: int = 10
    pictures: bool = True


CONFIG = PoseTestConfig
register_check(PoseTestConfig, lambda cfg: check_float32_only(cfg, "pose testing"))


def run(cfg: PoseTestConfig) -> dict:
    """Rebuild the head from its file, test it on ``data``; returns the results (also written as JSON)."""
    if not cfg.head:
        raise ValueError("give --head runs/<dir>/pose_head.pt (written by python -m downstream.pose.train)")
    state = load_head_checkpoint(cfg.head)
    device = select_device(cfg.device)
    size = int(state["image_size"])
    inputs = {**LEGACY_INPUTS, **state.get("inputs", {})}  # the test transform the head was trained with
    backbone = build_backbone(cfg.checkpoint or state["backbone_checkpoint"], cfg.model, size).to(device)
    if "backbone" in state:
        backbone.load_state_dict(state["backbone"])
    names = state["scene_names"]
    test_tf = PoseTransform(inputs["transform"], size, int(inputs["resize"]) or size)
    test_set = open_split(cfg.data.root, cfg.data.test_csv or cfg.data.train_csv, cfg.data.test_split, size,
                          in_channels(backbone), names=names, transform=test_tf)
    spec = HeadSpec(**{**LEGACY_HEAD_SPEC, **state["head_spec"]})
    head = build_head(spec, len(names), int(state["in_dim"]), tuple(state["grid_hw"]))
    head.load_state_dict(state["head"])
    head.to(device)
    results, pred = evaluate(head, backbone, test_set, names, cfg.data.mean, cfg.data.std, device, cfg.diag_frames,
                             cfg.neighbours)
    if "mean_pose" in state:
        results["mean_pose_baseline"] = mean_pose_report(state["mean_pose"], torch.from_numpy(test_set.table.xyz),
                                                         torch.from_numpy(test_set.table.quat),
                                                         torch.from_numpy(test_set.scene), names)
    output = cfg.output or str(Path(cfg.head).with_name("pose_test.json"))
    write_outputs(results, pred, output, cfg.tensorboard, cfg.pictures, cfg, head, test_set, test_set)
    return results


ALIASES = {"--head": "head", "--checkpoint": "checkpoint", "--output": "output", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.pose.test --head pose_head.pt data.root=DIR``; prints the summary table."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(PoseTestConfig, argv, ALIASES, __doc__)
    print(format_results(run_cleanly(lambda: run(cfg))))


if __name__ == "__main__":
    main()
