"""The mean-pose baseline: per scene, predict the training set's mean position and mean orientation.

A pose head that does not beat this has learned no more than where each scene's training
cameras are on average. It is evaluated like a model (same errors, medians, recall and test
frames, :func:`downstream.pose.metrics.per_scene_report`), given the true scene of each test frame
(so its scene accuracy is not a measurement and is reported as None).

Mean orientation: the eigenvector method (Markley, Cheng, Crassidis and Oshman, "Averaging
Quaternions", J. Guidance, Control and Dynamics 2007): the unit eigenvector of
``M = sum_i q_i q_i^T`` (4 x 4) with the largest eigenvalue. It is the rotation closest to all
training rotations in the summed squared Frobenius distance of their rotation matrices, it does
not depend on the sign of any q_i (q and -q are one rotation), and it needs no reference
quaternion. A normalised sign-aligned average needs one (to flip signs against) and is
ill-defined when the cameras turn around, as in the rendered rooms (heading 0.4-0.8 turns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from downstream.pose.metrics import orientation_error_deg, per_scene_report, position_error


def mean_quaternion(quat: np.ndarray) -> np.ndarray:
    """Markley's quaternion mean of (M, 4) unit quaternions -> (4,) unit, sign fixed so that w >= 0."""
    q = np.asarray(quat, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4 or len(q) == 0:
        raise ValueError(f"need (M, 4) quaternions with M >= 1, got shape {q.shape}")
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    vals, vecs = np.linalg.eigh(q.T @ q)
    mean = vecs[:, int(np.argmax(vals))]
    return mean if mean[0] >= 0 else -mean


def scene_mean_poses(xyz: np.ndarray, quat: np.ndarray, scene: np.ndarray, num_scenes: int) -> dict[str, np.ndarray]:
    """Per scene id 0..S-1: mean position (S, 3) and :func:`mean_quaternion` (S, 4) of the training frames.

    Raises:
        ValueError: A scene without training frames.
    """
    xyz, quat, scene = np.asarray(xyz, np.float64), np.asarray(quat, np.float64), np.asarray(scene)
    out_x, out_q = np.zeros((num_scenes, 3)), np.zeros((num_scenes, 4))
    for s in range(num_scenes):
        sel = scene == s
        if not sel.any():
            raise ValueError(f"scene id {s} has no training frames: no mean pose")
        out_x[s], out_q[s] = xyz[sel].mean(axis=0), mean_quaternion(quat[sel])
    return {"xyz": out_x, "quat": out_q}


def mean_pose_report(means: dict[str, np.ndarray], xyz: torch.Tensor, quat: torch.Tensor, scene: torch.Tensor,
                     scene_names: Sequence[str]) -> dict:
    """Errors of the mean-pose prediction on test frames, in the layout of a model's results.

    Args:
        means: From :func:`scene_mean_poses` (or the lists a head checkpoint stores).
        xyz: (M, 3) true positions; quat: (M, 4) true orientations; scene: (M,) true scene ids.
        scene_names: Name of each id.
    """
    scene = torch.as_tensor(scene).long()
    pred_x = torch.as_tensor(np.asarray(means["xyz"]), dtype=torch.float64)[scene]
    pred_q = torch.as_tensor(np.asarray(means["quat"]), dtype=torch.float64)[scene]
    report = per_scene_report(position_error(pred_x, xyz), orientation_error_deg(pred_q, torch.as_tensor(quat)),
                              scene, scene, scene_names)
    for s in report["scenes"].values():
        s["scene_accuracy"] = None  # given the true scene
    report["overall"]["scene_accuracy"] = None
    report["method"] = "per scene: training mean position, Markley eigenvector mean orientation; true scene given"
    return report
