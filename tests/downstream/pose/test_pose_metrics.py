"""Hand-value checks of the pose errors, recall, QKA and attention diagnostics."""

import math

import torch

from downstream.pose.losses import PoseLoss, query_key_alignment
from downstream.pose.metrics import (
    attention_entropy,
    orientation_error_deg,
    per_scene_report,
    position_error,
    query_region_purity,
    recall,
)


def test_orientation_error_sign_invariant_and_hand_angles():
    q = torch.tensor([[0.5, 0.5, -0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(orientation_error_deg(-q, q), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)  # 90 deg about z: (cos 45, 0, 0, sin 45)
    rot90 = torch.tensor([[c, 0.0, 0.0, s], [c, 0.0, 0.0, -s]])
    ident = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2)
    assert torch.allclose(orientation_error_deg(rot90, ident), torch.tensor([90.0, 90.0], dtype=torch.float64))
    # 30 deg about x, unnormalised prediction (x3) must not matter
    q30 = torch.tensor([[math.cos(math.pi / 12), math.sin(math.pi / 12), 0.0, 0.0]]) * 3
    assert abs(float(orientation_error_deg(q30, ident[:1])) - 30.0) < 1e-5
    # 180 deg about y vs identity
    assert abs(float(orientation_error_deg(torch.tensor([[0.0, 0, 1, 0]]), ident[:1])) - 180.0) < 1e-5


def test_position_error_and_recall():
    pe = position_error(torch.tensor([[3.0, 4.0, 0.0], [0.1, 0, 0]]), torch.zeros(2, 3))
    assert pe.tolist() == [5.0, 0.10000000149011612]
    r = recall(torch.tensor([0.1, 0.3, 0.3, 6.0]), torch.tensor([1.0, 1.0, 6.0, 1.0]))
    assert r == {"0.25m_2deg": 0.25, "0.5m_5deg": 0.5, "5m_10deg": 0.75}


def test_per_scene_report_medians():
    pe = torch.tensor([1.0, 2.0, 3.0, 10.0], dtype=torch.float64)
    oe = torch.tensor([4.0, 5.0, 6.0, 7.0], dtype=torch.float64)
    rep = per_scene_report(pe, oe, torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    assert rep["scenes"]["a"]["median_pos_m"] == 2.0 and rep["scenes"]["b"]["median_ori_deg"] == 7.0
    assert rep["overall"]["mean_of_median_pos_m"] == 6.0 and rep["overall"]["scene_accuracy"] == 0.75
    assert abs(rep["scenes"]["a"]["scene_accuracy"] - 2 / 3) < 1e-12


def test_qka_hand_example():
    q = torch.randn(2, 3, 5, 4)
    assert float(query_key_alignment(q, q)) == 0.0
    # head means: q -> (1, 0), k -> (0, 2): distance sqrt(5) in every head and batch item
    qh = torch.tensor([[0.0, 0.0], [2.0, 0.0]]).expand(2, 3, 2, 2)
    kh = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]]).expand(2, 3, 3, 2)
    assert abs(float(query_key_alignment(qh, kh)) - math.sqrt(5)) < 1e-6
    # shifting k by a constant c moves the distance by |c|: average over heads of 1 and 3 = 2
    k = q.clone()
    k[:, 0] += torch.tensor([1.0, 0, 0, 0])
    k[:, 1] += torch.tensor([0, 3.0, 0, 0])
    k[:, 2] += torch.tensor([0, 0, 2.0, 0])
    assert abs(float(query_key_alignment(q, k)) - 2.0) < 1e-5


def test_attention_entropy_uniform_and_one_hot():
    n = 7
    assert abs(float(attention_entropy(torch.full((2, 3, 4, n), 1.0 / n, dtype=torch.float64))) - math.log(n)) < 1e-12
    assert float(attention_entropy(torch.eye(n).expand(1, 2, n, n))) == 0.0


def test_query_region_purity():
    q = torch.zeros(1, 1, 3, 2) + torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    far_k = q + 100.0
    assert query_region_purity(q, far_k, neighbours=2).tolist() == [[[1.0, 1.0, 1.0]]]
    # keys on top of the queries (k = q + tiny): each query's nearest is its own key, then others
    near_k = q + 1e-4
    assert query_region_purity(q, near_k, neighbours=1).tolist() == [[[0.0, 0.0, 0.0]]]


def test_pose_loss_value_and_learned_weights():
    crit = PoseLoss(s_x=0.0, s_q=-3.0)
    x = torch.tensor([[3.0, 4.0, 0.0]])
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    loss, parts = crit(x, -q, torch.zeros(1, 3), q)  # L_x = 5, L_q = ||(-1,0,0,0) - (1,0,0,0)|| = 2
    assert abs(loss.item() - (5.0 + 0.0 + 2.0 * math.exp(3.0) - 3.0)) < 1e-4
    assert float(parts["l_q"]) == 2.0
    loss.backward()
    assert abs(float(crit.s_x.grad) - (1 - 5.0)) < 1e-5 and "s_q" in crit.state_dict()


def test_medians_ignore_nan_and_average_the_middle_pair():
    from downstream.pose.metrics import summarize

    # MS-Transformer's test takes np.nanmedian: NaN left out, even count -> mean of the middle two
    nan = float("nan")
    s = summarize(torch.tensor([1.0, nan, 2.0, 3.0, 4.0]), torch.tensor([10.0, 20.0, nan, 30.0, 40.0]))
    assert s["median_pos_m"] == 2.5 and s["median_ori_deg"] == 25.0 and s["nan_frames"] == 2
    assert s["mean_pos_m"] == 2.5 and s["frames"] == 5
    assert s["recall"]["5m_10deg"] == 0.2  # a NaN frame counts as a failure
    assert math.isnan(summarize(torch.tensor([nan]), torch.tensor([1.0]))["median_pos_m"])
