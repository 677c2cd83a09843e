"""Pose errors, localisation recall and the self-attention diagnostics of "Activating Self-Attention".

Errors (MS-Transformer, Shavit et al. 2021): position error ||x^ - x||_2 in metres, orientation
error 2 acos(|<q^, q>|) in degrees (q and -q are the same rotation). Per scene: median and mean,
recall at (0.25 m, 2 deg), (0.5 m, 5 deg), (5 m, 10 deg) (Lee et al., NeurIPS 2024, Table 3).

Attention diagnostics (Lee et al. 2024, sec. 3 and 5): the entropy of a self-attention map
(higher = less collapsed), the QKA distance between the token means of queries and keys, and
the purity of the query region: for each query token, the share of queries among its ``n``
nearest neighbours (Euclidean) in the joint set of that head's queries and keys, itself
excluded. 1.0 = queries only see queries (query and key regions separated); about 0.5 = queries
and keys are mixed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from downstream.pose.losses import query_key_alignment

RECALL_THRESHOLDS: tuple[tuple[float, float], ...] = ((0.25, 2.0), (0.5, 5.0), (5.0, 10.0))


def orientation_error_deg(q_pred: torch.Tensor, q_true: torch.Tensor) -> torch.Tensor:
    """Angle between two rotations, invariant to q -> -q.

    Args:
        q_pred: (M, 4) quaternions (normalised here; predictions need not be unit).
        q_true: (M, 4) unit quaternions, any component order as long as both agree (w, x, y, z here).

    Returns:
        (M,) float64 degrees in [0, 180].
    """
    if q_pred.shape != q_true.shape or q_pred.shape[-1] != 4:
        raise ValueError(f"need two (M, 4) quaternion arrays, got {tuple(q_pred.shape)} and {tuple(q_true.shape)}")
    a = torch.nn.functional.normalize(torch.as_tensor(q_pred).double(), dim=-1)
    b = torch.nn.functional.normalize(torch.as_tensor(q_true).double(), dim=-1)
    dot = (a * b).sum(dim=-1).abs().clamp(max=1.0)
    return torch.rad2deg(2.0 * torch.acos(dot))


def position_error(x_pred: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    """(M, 3) x 2 -> (M,) float64 Euclidean distance (metres)."""
    return (torch.as_tensor(x_pred).double() - torch.as_tensor(x_true).double()).norm(dim=-1)


def recall(pos_err: torch.Tensor, ori_err: torch.Tensor,
           thresholds: Sequence[tuple[float, float]] = RECALL_THRESHOLDS) -> dict[str, float]:
    """Share (0..1) of frames with position error <= t_m AND orientation error <= t_deg, per threshold."""
    n = max(1, int(pos_err.numel()))
    return {f"{tm:g}m_{td:g}deg": float(((pos_err <= tm) & (ori_err <= td)).sum()) / n for tm, td in thresholds}


def nan_median(values: torch.Tensor) -> float:
    """Median ignoring NaN, the middle two averaged for an even count (``np.nanmedian``, as MS-Transformer's test).

    (``torch.median`` would return the lower middle value.) NaN if every value is NaN.
    """
    v = torch.as_tensor(values).double().cpu().numpy()
    return float(np.nanmedian(v)) if (~np.isnan(v)).any() else float("nan")


def summarize(pos_err: torch.Tensor, ori_err: torch.Tensor) -> dict[str, float]:
    """Median / mean errors (ignoring NaN) and recall of one set of frames (e.g. one scene).

    Frames whose position or orientation error is NaN (a diverged prediction) are left out of
    medians and means, counted in ``nan_frames``, and count as failures in the recall.
    """
    if pos_err.numel() == 0:
        raise ValueError("no frames to summarise")
    pe, oe = torch.as_tensor(pos_err).double(), torch.as_tensor(ori_err).double()
    return {"median_pos_m": nan_median(pe), "median_ori_deg": nan_median(oe),
            "mean_pos_m": float(pe.nanmean()), "mean_ori_deg": float(oe.nanmean()),
            "recall": recall(pe, oe), "frames": int(pe.numel()), "nan_frames": int((pe.isnan() | oe.isnan()).sum())}


def per_scene_report(pos_err: torch.Tensor, ori_err: torch.Tensor, scene: torch.Tensor,
                     scene_pred: torch.Tensor, scene_names: Sequence[str]) -> dict:
    """Per-scene summaries, their mean of medians (the papers' headline numbers) and scene accuracy.

    Args:
        pos_err, ori_err: (M,) errors.
        scene: (M,) true scene ids; scene_pred: (M,) predicted ids.
        scene_names: Name of each id.
    """
    scenes = {}
    for i, name in enumerate(scene_names):
        sel = scene == i
        if bool(sel.any()):
            scenes[name] = summarize(pos_err[sel], ori_err[sel])
            scenes[name]["scene_accuracy"] = float((scene_pred[sel] == i).double().mean())
    keys = ("median_pos_m", "median_ori_deg", "mean_pos_m", "mean_ori_deg")
    overall = {f"mean_of_{k}": float(np.mean([s[k] for s in scenes.values()])) for k in keys}
    overall.update({"scene_accuracy": float((scene_pred == scene).double().mean()),
                    "recall": recall(pos_err, ori_err), "frames": int(pos_err.numel()),
                    "nan_frames": sum(s["nan_frames"] for s in scenes.values())})
    return {"scenes": scenes, "overall": overall}


def attention_entropy(attn: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of attention rows.

    Args:
        attn: (B, heads, N, M) attention probabilities, rows summing to 1.

    Returns:
        Scalar: mean over batch, heads and rows of -sum_j p_j log p_j (log M for uniform rows).
    """
    p = attn.double()
    return -(p * p.clamp_min(1e-30).log()).sum(dim=-1).mean()


def qka_distance(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The QKA loss as a diagnostic: see :func:`downstream.pose.losses.query_key_alignment`."""
    return query_key_alignment(q.double(), k.double()).detach()


def query_region_purity(q: torch.Tensor, k: torch.Tensor, neighbours: int = 10) -> torch.Tensor:
    """Per-query purity of the query region (share of queries among its nearest neighbours).

    Args:
        q: (B, heads, N, d) queries; k: (B, heads, M, d) keys of the same layer.
        neighbours: n, the neighbours counted (capped at N + M - 1).

    Returns:
        (B, heads, N) values in [0, 1]: 1 = only queries nearby, N/(N+M) = queries and keys mixed evenly.
    """
    n_q = q.shape[2]
    joint = torch.cat([q, k], dim=2).double()
    dist = torch.cdist(joint[:, :, :n_q], joint)  # (B, h, N, N + M)
    idx = torch.arange(n_q, device=q.device)
    dist[:, :, idx, idx] = float("inf")  # exclude the query itself
    n = min(neighbours, joint.shape[2] - 1)
    nearest = dist.topk(n, dim=-1, largest=False).indices
    return (nearest < n_q).double().mean(dim=-1)
