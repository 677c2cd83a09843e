"""The mean-pose baseline: Markley's quaternion mean and the per-scene report, on hand values."""

import math

import numpy as np
import pytest
import torch

from downstream.pose.baseline import mean_pose_report, mean_quaternion, scene_mean_poses

C45, S45 = math.cos(math.pi / 4), math.sin(math.pi / 4)  # 90 deg about z: (cos 45, 0, 0, sin 45)
C225, S225 = math.cos(math.pi / 8), math.sin(math.pi / 8)  # 45 deg about z


def test_quaternion_mean_halfway_and_sign_invariant():
    ident, rot90 = [1.0, 0, 0, 0], [C45, 0, 0, S45]
    # M = q1 q1^T + q2 q2^T; its top eigenvector is (q1 + q2) / |q1 + q2| = 45 deg about z
    np.testing.assert_allclose(mean_quaternion(np.array([ident, rot90])), [C225, 0, 0, S225], atol=1e-12)
    # -q is the same rotation: flipping a sign changes nothing (a plain average of q1 and -q2: 135 deg about -z)
    np.testing.assert_allclose(mean_quaternion(np.array([ident, [-v for v in rot90]])), [C225, 0, 0, S225], atol=1e-12)
    np.testing.assert_allclose(mean_quaternion(np.array([[-C45, 0, 0, -S45]] * 3)), [C45, 0, 0, S45], atol=1e-12)
    with pytest.raises(ValueError, match="M >= 1"):
        mean_quaternion(np.zeros((0, 4)))


def test_mean_pose_report_hand_values():
    # scene 0 trains at x = 0 and x = 2 (mean x = 1), rotations identity and 90 deg about z (mean 45 deg);
    # scene 1 trains at (0, 0, 5) with the identity
    xyz = np.array([[0.0, 0, 0], [2.0, 0, 0], [0.0, 0, 5]])
    quat = np.array([[1.0, 0, 0, 0], [C45, 0, 0, S45], [1.0, 0, 0, 0]])
    means = scene_mean_poses(xyz, quat, np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(means["xyz"], [[1, 0, 0], [0, 0, 5]])
    # test frames: scene 0 at (1, 3, 0) facing identity -> 3 m, 45 deg; at (1, 0, 4) facing 90 deg -> 4 m, 45 deg;
    # scene 1 at (0, 0, 5) facing 90 deg -> 0 m, 90 deg
    test_x = torch.tensor([[1.0, 3, 0], [1.0, 0, 4], [0.0, 0, 5]])
    test_q = torch.tensor([[1.0, 0, 0, 0], [C45, 0, 0, S45], [C45, 0, 0, S45]])
    rep = mean_pose_report(means, test_x, test_q, torch.tensor([0, 0, 1]), ["a", "b"])
    assert rep["scenes"]["a"]["median_pos_m"] == pytest.approx(3.5)  # median of 3 and 4 (mean of the middle two)
    assert rep["scenes"]["a"]["median_ori_deg"] == pytest.approx(45.0)
    assert rep["scenes"]["b"]["median_pos_m"] == pytest.approx(0.0, abs=1e-6)
    assert rep["scenes"]["b"]["median_ori_deg"] == pytest.approx(90.0)
    assert rep["overall"]["mean_of_median_pos_m"] == pytest.approx(1.75)
    assert rep["overall"]["mean_of_median_ori_deg"] == pytest.approx(67.5)
    assert rep["overall"]["scene_accuracy"] is None and rep["scenes"]["a"]["scene_accuracy"] is None
    with pytest.raises(ValueError, match="scene id 1 has no training frames"):
        scene_mean_poses(xyz, quat, np.array([0, 0, 0]), 2)
