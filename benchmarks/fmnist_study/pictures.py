"""The study's pictures: online k-NN per epoch, every metric per strategy and seed, attention with masks."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.fmnist_study.paired import Values
from benchmarks.fmnist_study.runs import INIT_BASELINES, VARIANTS, budget_key, run_dir
from benchmarks.fmnist_study.tables import METRICS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(out: Path, rows: list[dict], budget: str) -> None:
    """``knn_vs_epoch_<budget>.png``: the online k-NN (validation subset) after each epoch, every run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, v in enumerate(VARIANTS):
        curves = [r["knn_curve"] for r in rows if r["budget"] == budget and r["variant"] == v and r["knn_curve"]]
        for j, c in enumerate(curves):
            ax.plot(range(1, len(c) + 1), c, color=f"C{i}", marker="o", alpha=0.8, label=v if j == 0 else None)
    ax.set(xlabel="epoch", ylabel="online k-NN top-1 (%), validation subset", title=f"Fashion-MNIST study {budget}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"knn_vs_epoch_{budget}.png", dpi=100)
    plt.close(fig)


def plot_metrics(out: Path, values: dict[str, Values], budget: str) -> None:
    """``metrics_<budget>.png``: one panel per metric; a dot per seed, a bar at the mean, per variant."""
    metrics = [m for m, vals in values.items() if vals]
    if not metrics:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        names = [v for v in (*VARIANTS, *INIT_BASELINES) if any(k[0] == v for k in values[m])]
        for i, v in enumerate(names):
            xs = [x for (w, _), x in sorted(values[m].items()) if w == v]
            ax.bar(i, sum(xs) / len(xs), color=f"C{i}", alpha=0.35)
            ax.scatter([i] * len(xs), xs, color=f"C{i}", s=14, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        lo = min(values[m].values())
        hi = max(values[m].values())
        ax.set_ylim(lo - 0.15 * (hi - lo + 1), hi + 0.15 * (hi - lo + 1))
        ax.set_title(f"{m} ({METRICS[m][1]} better)", fontsize=8)
    fig.suptitle(f"Fashion-MNIST study {budget}: one dot per seed", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / f"metrics_{budget}.png", dpi=100)
    plt.close(fig)


def attention_maps(out: Path, root: Path, a: argparse.Namespace, n_images: int = 8) -> None:
    """``attention_<budget>_<variant>.png`` (seed 0): validation images, the teacher's [CLS] / SimPool
    attention (warm = high) and the mask the variant's strategy picks from it at ratio 0.3 (grey)."""
    from torchvision.utils import save_image

    from pretrain.data.datasets import FashionMNIST
    from pretrain.data.loader import build_eval_loader
    from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform
    from pretrain.masking import build_masker
    from pretrain.models import create_model_from_checkpoint
    from pretrain.tensorboard import attention_picture

    ds = torch.utils.data.Subset(FashionMNIST(root, "train_holdout"), list(range(n_images)))
    images = next(iter(build_eval_loader(ds, EvalTransform(a.image_size, resize=a.image_size), n_images, 0)))[0]
    x = (images.float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for v, overrides in VARIANTS.items():
        ckpt = run_dir(a, v, 0) / "checkpoint.pt"
        if not ckpt.is_file():
            continue
        model, _ = create_model_from_checkpoint(ckpt, which="teacher")
        with torch.no_grad():
            scores = model.eval().forward_features(x, return_attention="cls").attention
        strategy = overrides[0].split("=")[1]
        grid = (a.image_size // model.patch_size,) * 2
        masks = None if strategy == "none" else build_masker(strategy, prob=1.0, ratio_range=(0.3, 0.3))(
            n_images, grid, scores=scores, generator=torch.Generator().manual_seed(0))
        picture = attention_picture(x, scores, masks, IMAGENET_MEAN, IMAGENET_STD)
        save_image(torch.nn.functional.interpolate(picture[None], scale_factor=4, mode="nearest")[0],
                   out / f"attention_{budget_key(a)}_{v}.png")
