"""Pictures of a pose run: top-down trajectories, attention entropy per layer, where the scene query looks.

- ``trajectories.png``: per scene, ground-truth vs predicted camera positions seen from above,
  the first two position coordinates (t1, t2: the x-y plane; z is up in rendered rooms).
- ``entropy.png``: per encoder layer self-attention entropy of each branch
  (:func:`entropy_bars` also compares runs, e.g. with and without QKA).
- ``query_attention.png``: one test frame per scene with the last decoder layer's
  cross-attention of the predicted scene's query (mean over heads) over the image tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

LABELS = {"entropy": "attention entropy (nats)", "purity": "query-region purity", "qka_distance": "QKA distance"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trajectories(x_true: np.ndarray, x_pred: np.ndarray, scene: np.ndarray, names: list[str], path: Path) -> Path:
    """Top-down (t1, t2) plot per scene: ground truth (line), predictions (dots), error segments."""
    plt = _plt()
    n = len(names)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[0], names)):
        sel = scene == i
        gt, pr = x_true[sel], x_pred[sel]
        for a, b in zip(gt, pr):
            ax.plot([a[0], b[0]], [a[1], b[1]], color="0.8", lw=0.5, zorder=1)
        ax.plot(gt[:, 0], gt[:, 1], "-", color="tab:blue", lw=1.2, label="ground truth", zorder=2)
        ax.scatter(pr[:, 0], pr[:, 1], s=4, color="tab:red", label="predicted", zorder=3)
        err = np.linalg.norm(gt - pr, axis=1)
        ax.set_title(f"{name}: median {np.median(err):.2f} m", fontsize=9)
        ax.set_xlabel("x (m)")
        ax.set_aspect("equal", adjustable="datalim")
    axes[0][0].set_ylabel("y (m)")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("camera positions from above (x-y plane)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def entropy_bars(runs: Mapping[str, Mapping[str, list[dict]]], path: Path, key: str = "entropy") -> Path:
    """Grouped bars of ``key`` per encoder layer, one panel per branch, one bar colour per run.

    Args:
        runs: {run name: results["attention"]} (branch -> list of per-layer dicts).
    """
    plt = _plt()
    branches = list(next(iter(runs.values())).keys())
    fig, axes = plt.subplots(1, len(branches), figsize=(4.5 * len(branches), 3.2), squeeze=False)
    width = 0.8 / len(runs)
    for ax, branch in zip(axes[0], branches):
        for j, (name, att) in enumerate(runs.items()):
            vals = [d[key] for d in att[branch]]
            ax.bar(np.arange(len(vals)) + j * width, vals, width, label=name)
        top = att[branch][0].get("uniform_entropy") if key == "entropy" else None
        if top is not None:
            ax.axhline(top, color="0.4", ls="--", lw=1, label="uniform (log N)")
        ax.set_xticks(np.arange(len(vals)) + width * (len(runs) - 1) / 2, [f"L{i + 1}" for i in range(len(vals))])
        ax.set_title(f"{branch} encoder", fontsize=10)
        ax.set_ylabel(LABELS.get(key, key))
    axes[0][-1].legend(fontsize=7, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@torch.no_grad()
def query_attention(head, tokens: torch.Tensor, images: torch.Tensor, path: Path, branch: str = "position") -> Path:
    """Overlay of the chosen scene query's last-decoder cross-attention on each image.

    Args:
        head: A :class:`downstream.pose.model.PoseHead`.
        tokens: (K, N, D) backbone tokens of K frames; images: (K, C, H, W) uint8 of the same frames.
    """
    plt = _plt()
    head.eval()
    out = head(tokens, want_attn=True)
    attn = out.cross[branch]  # (K, heads, S, N)
    h, w = head.grid_hw
    k = len(images)
    fig, axes = plt.subplots(2, k, figsize=(2.4 * k, 4.8), squeeze=False)
    for i in range(k):
        img = images[i].permute(1, 2, 0).cpu().numpy()
        img = np.repeat(img, 3, 2) if img.shape[2] == 1 else img
        amap = attn[i, :, int(out.scene[i])].mean(0).reshape(1, 1, h, w).float()
        amap = torch.nn.functional.interpolate(amap, size=img.shape[:2], mode="nearest")[0, 0].cpu().numpy()
        axes[0][i].imshow(img)
        axes[0][i].set_title(f"scene {int(out.scene[i])}", fontsize=8)
        axes[1][i].imshow(img)
        axes[1][i].imshow(amap, cmap="inferno", alpha=0.6)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle(f"{branch} branch: where the scene query attends (last decoder layer)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_all(folder: Path, results: dict, pred: dict, head, source, image_set) -> list[Path]:
    """The three pictures of one run into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [trajectories(pred["x_true"].numpy(), pred["x"].numpy(), pred["scene"].numpy(), list(image_set.names),
                          folder / "trajectories.png"),
             entropy_bars({"this run": results["attention"]}, folder / "entropy.png")]
    scene = pred["scene"]
    picks = [int(torch.nonzero(scene == s)[len(torch.nonzero(scene == s)) // 2]) for s in range(head.num_scenes)
             if bool((scene == s).any())][:6]
    device = next(head.parameters()).device
    images = torch.stack([image_set[i][0] for i in picks])
    first = torch.stack([source[i][0] for i in picks])
    if first.dtype == torch.uint8:
        log.info("query-attention picture skipped: needs cached tokens")  # fine-tuning: no token cache
        return paths
    paths.append(query_attention(head, first.to(device).float(), images, folder / "query_attention.png"))
    log.info("pictures: %s", ", ".join(str(p) for p in paths))
    return paths
