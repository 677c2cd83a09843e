"""Testing a pose head: predictions, per-scene errors, recall, scene accuracy and attention diagnostics.

The library side of ``python -m downstream.pose.test`` (:mod:`downstream.pose.test`), also used
by training (:mod:`downstream.pose.train`) to test the head it wrote.

Results (JSON): ``scenes.<name>`` median / mean position (m) and orientation (deg) errors,
recall at (0.25 m, 2 deg), (0.5 m, 5 deg), (5 m, 10 deg), scene accuracy; ``overall`` their
mean of medians (the papers' number), pooled recall and accuracy; ``attention.<branch>`` per
encoder layer: self-attention entropy (nats), QKA distance, query-region purity (docs/pose.md);
``mean_pose_baseline`` the same errors for the per-scene training mean pose
(:mod:`downstream.pose.baseline`), added by the callers that know the training poses.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from downstream.eval_cli import save_beside
from downstream.pose.metrics import (
    attention_entropy,
    orientation_error_deg,
    per_scene_report,
    position_error,
    qka_distance,
    query_region_purity,
)
from downstream.pose.tokens import patch_tokens
from downstream.results import log_results, tensorboard_dir, write_json

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(head, backbone, source, mean: Sequence[float], std: Sequence[float], device: torch.device,
            batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Run the head (argmax scene) over (tokens | images, xyz, quat, scene) -> predictions and targets."""
    head.eval()
    out: dict[str, list] = {k: [] for k in ("x", "q", "scene_pred", "x_true", "q_true", "scene")}
    t0, n = time.perf_counter(), 0
    for first, xyz, quat, scene in DataLoader(source, batch_size=batch_size):
        tokens = patch_tokens(backbone, first.to(device), mean, std) if first.dtype == torch.uint8 else first.to(device)
        o = head(tokens.float())
        for k, v in (("x", o.x), ("q", o.q), ("scene_pred", o.scene), ("x_true", xyz), ("q_true", quat),
                     ("scene", torch.as_tensor(scene))):
            out[k].append(v.cpu())
        n += len(xyz)
    res = {k: torch.cat(v) for k, v in out.items()}
    res["frames_per_s"] = torch.tensor(n / max(time.perf_counter() - t0, 1e-9))
    return res


@torch.no_grad()
def attention_diagnostics(head, tokens: torch.Tensor, neighbours: int = 10) -> dict[str, list[dict[str, float]]]:
    """Per branch and encoder layer: entropy (and log N, its uniform maximum), QKA distance, mean purity."""
    head.eval()
    o = head(tokens, want_attn=True)
    return {b: [{"layer": i, "entropy": float(attention_entropy(r.attn)), "uniform_entropy": math.log(r.attn.shape[-1]),
                 "qka_distance": float(qka_distance(r.q, r.k)),
                 "purity": float(query_region_purity(r.q, r.k, neighbours).mean())} for i, r in enumerate(recs)]
            for b, recs in o.records.items()}


def evaluate(head, backbone, source, scene_names: Sequence[str], mean: Sequence[float], std: Sequence[float],
             device: torch.device, diag_frames: int = 64, neighbours: int = 10) -> tuple[dict, dict]:
    """Errors and diagnostics on a test source; returns (results, predictions)."""
    pred = predict(head, backbone, source, mean, std, device)
    pe, oe = position_error(pred["x"], pred["x_true"]), orientation_error_deg(pred["q"], pred["q_true"])
    results = per_scene_report(pe, oe, pred["scene"], pred["scene_pred"], scene_names)
    results["overall"]["head_frames_per_s"] = float(pred["frames_per_s"])
    idx = torch.linspace(0, len(source) - 1, min(diag_frames, len(source))).long()  # spread over scenes
    first = torch.stack([source[int(i)][0] for i in idx]).to(device)
    with torch.no_grad():
        tokens = patch_tokens(backbone, first, mean, std) if first.dtype == torch.uint8 else first
    results["attention"] = attention_diagnostics(head, tokens.float(), neighbours)
    pred["diag_index"] = idx
    return results, pred


def _summary_line(name: str, s: dict) -> str:
    r = list(s["recall"].values())
    acc = "  -  " if s.get("scene_accuracy") is None else f"{s['scene_accuracy']:.2f}"
    return (f"{name:>12}  {s['median_pos_m']:11.3f}  {s['median_ori_deg']:13.2f}  {acc:4}"
            f"  {r[0]:9.2f}  {r[1]:8.2f}  {r[2]:8.2f}")


def _mean_line(name: str, report: dict) -> str:
    o = report["overall"]
    return _summary_line(name, {"median_pos_m": o["mean_of_median_pos_m"], "median_ori_deg": o["mean_of_median_ori_deg"],
                                "scene_accuracy": o["scene_accuracy"], "recall": o["recall"]})


def format_results(results: dict) -> str:
    """A text table: one line per scene, the mean of medians, the mean-pose baseline, attention entropies."""
    lines = [f"{'scene':>12}  med pos (m)  med ori (deg)  acc   R(.25m,2)  R(.5m,5)  R(5m,10)"]
    lines += [_summary_line(name, s) for name, s in results["scenes"].items()]
    lines.append(_mean_line("mean", results))
    if "mean_pose_baseline" in results:
        lines.append(_mean_line("mean pose", results["mean_pose_baseline"]) + "   (baseline: training mean per scene)")
    for b, layers in results.get("attention", {}).items():
        lines.append(f"{b} entropy per layer: " + " ".join(f"{d['entropy']:.2f}" for d in layers))
    return "\n".join(lines)


def write_outputs(results: dict, pred: dict, output: str, tensorboard: str, pictures: bool, config: object,
                  head, source, image_set) -> None:
    """JSON (+ the resolved ``config`` beside it), TensorBoard scalars and, if asked, the pictures."""
    write_json(output, results)
    save_beside(config, output)
    log_results(tensorboard_dir(tensorboard, output), results, "pose")
    if pictures:
        from downstream.pose import pictures

        pictures.save_all(Path(output).parent, results, pred, head, source, image_set)
