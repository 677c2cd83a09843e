"""Weighted k-NN classification of frozen features (DINO protocol): the algorithm.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), 2021, sec. 4:
features are L2-normalised; each test feature retrieves its k most cosine-similar training
features, which vote for their class with weight ``exp(sim / T)`` (T = 0.07); accuracy is
reported for k in {10, 20, 100, 200} as top-1 and top-5 in percent. The neighbour search runs once
with the largest k (see :mod:`downstream.knn_backends`); every smaller k votes from a prefix of
the same sorted list. Any number of classes works (DINO hard-codes 1000: issue #242).

Class-score ties are broken towards the smaller class index (a stable sort). Top-5 counts a
hit in the first ``min(5, k, C)`` ranked classes, as DINO does.

Labels must be class indices (see :func:`downstream.checks.as_labels`) and features finite: a
NaN row would still "vote" (its similarities are NaN) and score silently, so it is an error
unless ``nonfinite="drop"`` asks to leave such rows out (counted in the result).
The command line is :mod:`downstream.knn`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from downstream.checks import (
    as_labels,
    handle_nonfinite,
    nonfinite_message,
    nonfinite_rows,
)
from downstream.checks import num_classes as count_classes
from downstream.knn.backends import Searcher, build_searcher

log = logging.getLogger(__name__)

DEFAULT_KS: tuple[int, ...] = (10, 20, 100, 200)


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x


def vote(sims: torch.Tensor, neighbour_labels: torch.Tensor, k: int, num_classes: int,
         temperature: float = 0.07, top: int = 5) -> torch.Tensor:
    """Class ranking from the k nearest neighbours' weighted votes.

    Args:
        sims: Cosine similarities (Q, K) sorted best first, K >= k.
        neighbour_labels: Their class labels (Q, K), int64.
        k: How many neighbours vote (the first k columns).
        num_classes: C.
        temperature: T in the vote weight exp(sim / T).
        top: How many ranked classes to return.

    Returns:
        int64 (Q, min(top, C)): classes by decreasing score, ties towards the smaller index.
    """
    weights = (sims[:, :k].double() / temperature).exp()
    scores = torch.zeros(sims.shape[0], num_classes, dtype=torch.float64)
    scores.scatter_add_(1, neighbour_labels[:, :k], weights)
    return scores.sort(dim=1, descending=True, stable=True).indices[:, :min(top, num_classes)]


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def knn_predict(train_features: torch.Tensor | np.ndarray, train_labels: torch.Tensor | np.ndarray,
                test_features: torch.Tensor | np.ndarray, ks: Sequence[int] = DEFAULT_KS,
                temperature: float = 0.07, num_classes: int | None = None,
                searcher: Searcher | None = None, backend: str = "auto", device: str = "cpu",
                chunk_size: int = 1024, progress: bool = False) -> Iterator[tuple[slice, dict[int, torch.Tensor]]]:
    """Stream k-NN class rankings over test chunks (memory bounded by the chunk size).

    Args:
        train_features: (N, D) features of the labelled set (any scale: they are normalised).
        train_labels: (N,) int labels in 0..C-1 (whole-number floats accepted, nothing truncated).
        test_features: (M, D) features to classify; both sets must be finite.
        ks: Neighbour counts to evaluate; each is capped at N.
        temperature: Vote temperature T.
        num_classes: C; default max(train label) + 1.
        searcher: A prebuilt index over ``train_features`` (reused across calls, e.g. few-shot);
            built with ``backend``/``device`` when None.
        backend: See :data:`downstream.knn_backends.BACKENDS`.
        device: Torch device for the torch backend.
        chunk_size: Test features per search call.
        progress: Show a tqdm bar over chunks.

    Yields:
        (test slice, {k: int64 (chunk, min(5, k, C)) ranked classes}).

    Raises:
        ValueError: Bad labels, NaN / infinite features (rows named), mismatched shapes.
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty list of positive neighbour counts, got {list(ks)}")
    train_labels = as_labels(train_labels, "train labels")
    num_classes = num_classes or count_classes(train_labels)
    for name, feats in (("train features", train_features), ("test features", test_features)):
        bad = nonfinite_rows(feats)
        if bad.size:
            raise ValueError(nonfinite_message(name, bad, int(feats.shape[0])))
    n_train, n_test = int(train_labels.shape[0]), int(test_features.shape[0])
    if n_train == 0 or int(train_features.shape[0]) != n_train:
        raise ValueError(f"need one label per training feature and at least one: {train_features.shape[0]} "
                         f"features, {n_train} labels")
    if int(test_features.shape[1]) != int(train_features.shape[1]):
        raise ValueError(f"train features have dimension {train_features.shape[1]} but test features "
                         f"{test_features.shape[1]}: extract both with the same model and kind")
    if searcher is None:
        searcher = build_searcher(train_features, backend, device)
    k_max = min(max(ks), n_train)
    if max(ks) > n_train:
        log.warning("k up to %d asked but only %d training samples: using k=min(k, %d)", max(ks), n_train, n_train)
    bar = tqdm(total=n_test, desc=f"k-NN ({searcher.name})", unit="img", disable=not progress, leave=False)
    for part in _chunks(n_test, chunk_size):
        sims, idx = searcher.search(_as_tensor(test_features[part]), k_max)
        labels = train_labels[idx]
        yield part, {k: vote(sims, labels, min(k, n_train), num_classes, temperature, min(5, k)) for k in ks}
        bar.update(part.stop - part.start)
    bar.close()


def knn_classify(train_features: torch.Tensor | np.ndarray, train_labels: torch.Tensor | np.ndarray,
                 test_features: torch.Tensor | np.ndarray, test_labels: torch.Tensor | np.ndarray,
                 ks: Sequence[int] = DEFAULT_KS, temperature: float = 0.07, nonfinite: str = "error",
                 **kwargs) -> dict[str, dict[str, float]]:
    """Top-1 / top-5 accuracy (percent) of the weighted k-NN classifier for every k.

    Args:
        train_features, train_labels, test_features: As in :func:`knn_predict`.
        test_labels: (M,) int labels of the test set.
        ks, temperature: As in :func:`knn_predict`.
        nonfinite: ``error`` (default): NaN / infinite feature rows are an error naming them;
            ``drop``: those rows (train or test) are left out, accuracy is over the remaining
            test rows, and the counts are returned under ``"dropped_nonfinite"``.
        **kwargs: Passed to :func:`knn_predict` (backend, device, chunk_size, searcher, num_classes, progress).

    Returns:
        ``{"k=10": {"top1": float, "top5": float}, ...}`` (+ ``"dropped_nonfinite": {"train": n,
        "test": m}`` with ``nonfinite="drop"``).
    """
    test_labels = as_labels(test_labels, "test labels")
    train_labels = as_labels(train_labels, "train labels")
    if test_labels.shape[0] != test_features.shape[0]:
        raise ValueError(f"{test_features.shape[0]} test features but {test_labels.shape[0]} test labels")
    kwargs.setdefault("num_classes", count_classes(train_labels, test_labels))
    train_features, train_labels, n_train_bad = handle_nonfinite(_as_tensor(train_features), train_labels,
                                                                 "train features", nonfinite)
    test_features, test_labels, n_test_bad = handle_nonfinite(_as_tensor(test_features), test_labels,
                                                              "test features", nonfinite)
    if (n_train_bad or n_test_bad) and kwargs.get("searcher") is not None:
        raise ValueError("nonfinite='drop' removed rows but a prebuilt searcher indexes all of them: "
                         "drop the rows before building the searcher")
    hits = {k: [0, 0] for k in ks}
    for part, ranked in knn_predict(train_features, train_labels, test_features, ks, temperature, **kwargs):
        target = test_labels[part].view(-1, 1)
        for k, classes in ranked.items():
            hit = classes == target
            hits[k][0] += int(hit[:, :1].sum())
            hits[k][1] += int(hit.sum())
    n = max(1, int(test_labels.shape[0]))
    results: dict = {f"k={k}": {"top1": 100.0 * h1 / n, "top5": 100.0 * h5 / n} for k, (h1, h5) in hits.items()}
    if nonfinite == "drop":
        results["dropped_nonfinite"] = {"train": n_train_bad, "test": n_test_bad}
    return results
