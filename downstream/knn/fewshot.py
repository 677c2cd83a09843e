"""Few-shot k-NN: nu labelled images per class, several random draws, mean and std.

Protocol as in the AttMask / MSN low-shot evaluations: for each seed draw ``nu`` training
images of every class without replacement, classify the whole test set with the weighted
k-NN of :mod:`downstream.weighted_knn` (k = 1 for nu = 1, else k = 20, T = 0.07), and report the mean
and standard deviation of top-1 / top-5 (percent) over the seeds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from downstream.checks import as_labels, num_classes
from downstream.knn.weighted_knn import knn_classify

log = logging.getLogger(__name__)

DEFAULT_SHOTS: tuple[int, ...] = (1, 5, 10, 20)


def k_for_shots(nu: int) -> int:
    """Neighbours used with nu images per class: 1 for one-shot, else 20."""
    return 1 if nu == 1 else 20


def sample_few_shot(labels: np.ndarray | torch.Tensor, nu: int, seed: int) -> np.ndarray:
    """Indices of ``nu`` samples per class, drawn without replacement.

    Args:
        labels: (N,) int labels.
        nu: Images per class (>= 1).
        seed: Seed of this draw (numpy Generator: independent of global RNG state).

    Returns:
        Sorted int64 indices (sum over classes of min(nu, class size),).

    Raises:
        ValueError: nu < 1.
    """
    if nu < 1:
        raise ValueError(f"few-shot needs nu >= 1 images per class, got {nu}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < nu:
            log.warning("class %s has only %d training images (< nu=%d): using all of them", cls, len(members), nu)
        picked.append(rng.choice(members, size=min(nu, len(members)), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def few_shot_knn(train_features: torch.Tensor | np.ndarray, train_labels: torch.Tensor | np.ndarray,
                 test_features: torch.Tensor | np.ndarray, test_labels: torch.Tensor | np.ndarray,
                 shots: Sequence[int] = DEFAULT_SHOTS, seeds: Sequence[int] = (0, 1, 2, 3, 4),
                 temperature: float = 0.07, **knn_kwargs) -> dict[str, dict]:
    """Few-shot k-NN accuracy for every nu in ``shots``, averaged over ``seeds``.

    Args:
        train_features, train_labels: The full labelled pool (N, D), (N,).
        test_features, test_labels: The evaluation set (M, D), (M,).
        shots: Images per class to draw.
        seeds: One draw per seed.
        temperature: Vote temperature T.
        **knn_kwargs: For :func:`downstream.weighted_knn.knn_classify` (backend, device, chunk_size,
            progress, nonfinite).

    Returns:
        ``{"nu=5": {"k": 20, "top1_mean", "top1_std", "top5_mean", "top5_std", "top1": [per seed], "top5": [...]}}``.
    """
    train_features = torch.as_tensor(train_features)
    test_features = torch.as_tensor(test_features)
    train_labels, test_labels = as_labels(train_labels, "train labels"), as_labels(test_labels, "test labels")
    classes = num_classes(train_labels, test_labels)
    if len(seeds) == 0:
        raise ValueError("few-shot needs at least one seed")
    results = {}
    for nu in shots:
        k = k_for_shots(nu)
        top1, top5 = [], []
        for seed in seeds:
            idx = torch.from_numpy(sample_few_shot(train_labels.numpy(), nu, seed))
            res = knn_classify(train_features[idx], train_labels[idx], test_features, test_labels, ks=(k,),
                               temperature=temperature, num_classes=classes, **knn_kwargs)[f"k={k}"]
            top1.append(res["top1"])
            top5.append(res["top5"])
        results[f"nu={nu}"] = {
            "k": k, "top1_mean": float(np.mean(top1)), "top1_std": float(np.std(top1)),
            "top5_mean": float(np.mean(top5)), "top5_std": float(np.std(top5)), "top1": top1, "top5": top5,
        }
        log.info("few-shot nu=%d k=%d: top1 %.2f +- %.2f", nu, k, np.mean(top1), np.std(top1))
    return results
