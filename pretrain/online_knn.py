"""Online k-NN check of the teacher backbone during pretraining.

A plain-torch weighted k-NN (DINO protocol: cosine similarity of L2-normalised features,
votes weighted by exp(sim / T)) on a fixed labelled subset. The full evaluator with faiss
backends lives in ``downstream.knn``; this one only tracks progress.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.data.datasets import build_dataset
from pretrain.data.loader import build_eval_loader
from pretrain.data.transforms import EvalTransform
from pretrain.features import extract

log = logging.getLogger(__name__)


def weighted_knn_top1(train_feats: torch.Tensor, train_labels: torch.Tensor,
                      test_feats: torch.Tensor, test_labels: torch.Tensor, k: int = 20,
                      temperature: float = 0.07, chunk: int = 1024) -> float:
    """Top-1 accuracy (%) of the DINO weighted k-NN classifier.

    Args:
        train_feats: (N, D) features; normalised here. train_labels: (N,) int64.
        test_feats: (M, D) features. test_labels: (M,) int64.
        k: Neighbours; capped at N.
        temperature: T in exp(sim / T).
        chunk: Test rows per similarity block, bounding memory at chunk x N.
    """
    train = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.float(), dim=1)
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train.shape[0])
    correct = 0
    for i in range(0, test.shape[0], chunk):
        sim, idx = (test[i:i + chunk] @ train.T).topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], n_classes, dtype=torch.float32)
        votes.scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == test_labels[i:i + chunk]).sum())
    return 100.0 * correct / test.shape[0]


def subset_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """The monitor's fixed subset: ``limit`` of ``n`` rows drawn without replacement with ``seed``, sorted;
    all rows when ``limit`` is 0 or covers them."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _subset(dataset, limit: int, seed: int):
    if limit <= 0 or limit >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, subset_rows(len(dataset), limit, seed).tolist())


class KnnMonitor:
    """Holds the two labelled subsets and evaluates a backbone on them.

    Args:
        dataset: "fashion_mnist" or "imagefolder" (``root/<split>``).
        root: Dataset root.
        train_split, test_split: Split names (bank and queries).
        max_train, max_test: Subset sizes (fixed, seeded), keeping the check cheap.
        image_size: Evaluation crop side (should match the global crop size).
        features: Readouts scored (``pretrain.features`` kinds), e.g. ``("pooled", "grid2")``.
    """

    def __init__(self, dataset: str, root: str, train_split: str, test_split: str,
                 max_train: int, max_test: int, image_size: int, k: int, temperature: float,
                 batch_size: int, num_workers: int, mean, std, features: tuple[str, ...] = ("pooled",)) -> None:
        tf = EvalTransform(image_size, resize=image_size)

        def subset(split: str, limit: int, seed: int):
            return _subset(build_dataset(dataset, root, split, skip_unreadable=True), limit, seed)

        self.train = build_eval_loader(subset(train_split, max_train, 0),
                                       tf, batch_size, num_workers)
        self.test = build_eval_loader(subset(test_split, max_test, 1),
                                      tf, batch_size, num_workers)
        self.k, self.temperature, self.mean, self.std = k, temperature, mean, std
        self.features = tuple(features)

    def evaluate(self, backbone: nn.Module, device: torch.device, amp: str) -> dict[str, float]:
        """{kind: top-1 (%)} of ``backbone``'s features, in ``features`` order; ``amp`` is the run's autocast."""
        was_training = backbone.training
        backbone.eval()
        try:
            (bank, bank_y), (queries, query_y) = [
                extract(backbone, loader, self.features, device, amp, self.mean, self.std, progress=False)
                for loader in (self.train, self.test)]
        finally:
            backbone.train(was_training)
        bank_y, query_y = torch.from_numpy(bank_y), torch.from_numpy(query_y)
        return {kind: weighted_knn_top1(torch.from_numpy(bank[kind]), bank_y, torch.from_numpy(queries[kind]),
                                        query_y, self.k, self.temperature) for kind in self.features}


def knn_tag(kind: str) -> str:
    """The scalar name of one readout's online k-NN: ``knn/top1`` for pooled, ``knn/top1_<kind>`` otherwise."""
    return "knn/top1" if kind == "pooled" else f"knn/top1_{kind}"
