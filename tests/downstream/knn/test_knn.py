"""k-NN classifier against a brute-force numpy computation of DINO's weighted vote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from downstream.checks import as_labels
from downstream.knn.backends import TorchSearcher, available_backends, resolve_backend
from downstream.knn.weighted_knn import knn_classify, knn_predict

BACKENDS = available_backends()


def brute_force(train, train_labels, test, k, temperature=0.07, num_classes=None, top=5):
    """Reference: full float64 similarity matrix, stable sorts (ties -> smaller index)."""
    num_classes = num_classes or int(max(train_labels.max(), 0)) + 1
    tr = train / np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-12)
    te = test / np.maximum(np.linalg.norm(test, axis=1, keepdims=True), 1e-12)
    sims = te.astype(np.float64) @ tr.astype(np.float64).T
    k = min(k, len(train))
    out = []
    for row in sims:
        nn = np.argsort(-row, kind="stable")[:k]
        scores = np.zeros(num_classes)
        np.add.at(scores, train_labels[nn], np.exp(row[nn] / temperature))
        out.append(np.argsort(-scores, kind="stable")[:min(top, k, num_classes)])
    return np.stack(out)


def _ranked(train, ytr, test, ks, **kw):
    parts = {k: [] for k in ks}
    for _, ranked in knn_predict(train, ytr, test, ks, **kw):
        for k in ks:
            parts[k].append(ranked[k].numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def _clustered(n, classes, dim, seed, spread=1.0):
    """Gaussian clusters; the centres depend only on (classes, dim), so train and test share them."""
    centers = np.random.default_rng(classes * 1000 + dim).normal(size=(classes, dim))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    return (centers[labels] + spread * rng.normal(size=(n, dim))).astype(np.float32), labels


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_brute_force_every_k(backend):
    train, ytr = _clustered(600, 7, 16, 0, spread=1.5)
    test, _ = _clustered(150, 7, 16, 1, spread=1.5)
    ks = (1, 5, 10, 20, 100, 200)
    got = _ranked(train, ytr, test, ks, backend=backend, chunk_size=37)
    for k in ks:
        np.testing.assert_array_equal(got[k], brute_force(train, ytr, test, k), err_msg=f"k={k}")


def test_torch_blocks_merge_exactly():
    """Walking the training set in small blocks must give the single-block answer."""
    train, _ytr = _clustered(1000, 5, 8, 2)
    queries = torch.from_numpy(_clustered(64, 5, 8, 3)[0])
    one = TorchSearcher(torch.from_numpy(train), train_block=10**6).search(queries, 50)
    many = TorchSearcher(torch.from_numpy(train), train_block=33).search(queries, 50)
    torch.testing.assert_close(many[0], one[0])
    assert torch.equal(many[1], one[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_vote_ties_go_to_smaller_class(backend):
    # Two identical training points with labels 3 and 1: equal votes for k=2 -> class 1 first.
    train = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    ytr = np.array([3, 1, 0])
    got = _ranked(train, ytr, np.array([[1.0, 0.1]], np.float32), (2,), backend=backend)
    assert got[2].tolist() == [[1, 3]]
    np.testing.assert_array_equal(got[2], brute_force(train, ytr, np.array([[1.0, 0.1]]), 2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_tied_neighbours_and_duplicates(backend):
    # Every training point appears twice with its label: neighbour ties at any k boundary cannot
    # change the vote, so results must equal the reference exactly.
    base, yb = _clustered(100, 4, 6, 4, spread=2.0)
    train, ytr = np.concatenate([base, base]), np.concatenate([yb, yb])
    test, _ = _clustered(40, 4, 6, 5, spread=2.0)
    got = _ranked(train, ytr, test, (1, 3, 20), backend=backend)
    for k in (1, 3, 20):
        np.testing.assert_array_equal(got[k][:, :1], brute_force(train, ytr, test, k)[:, :1])


def test_k_larger_than_class_and_than_train_set():
    train, ytr = _clustered(30, 10, 8, 6, spread=0.1)  # ~3 per class, k=20 spans many classes
    test, yte = _clustered(50, 10, 8, 7, spread=0.1)
    res = knn_classify(train, ytr, test, yte, ks=(20, 200), backend="torch")
    ref = {k: brute_force(train, ytr, test, k) for k in (20, 200)}
    for k in (20, 200):
        expected_top1 = 100.0 * np.mean(ref[k][:, 0] == yte)
        expected_top5 = 100.0 * np.mean((ref[k] == yte[:, None]).any(1))
        assert res[f"k={k}"]["top1"] == pytest.approx(expected_top1)
        assert res[f"k={k}"]["top5"] == pytest.approx(expected_top5)
    assert res["k=20"]["top1"] > 50  # tight clusters: nearest ones dominate the exp weights


def test_one_class_and_many_classes():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(50, 4)), rng.normal(size=(20, 4))
    res = knn_classify(train, np.zeros(50, int), test, np.zeros(20, int), ks=(10,))
    assert res == {"k=10": {"top1": 100.0, "top5": 100.0}}
    # 1500 classes (more than DINO's hard-coded 1000), one sample each, test = train.
    many = rng.normal(size=(1500, 32)).astype(np.float32)
    res = knn_classify(many, np.arange(1500), many, np.arange(1500), ks=(1, 10), backend="torch")
    assert res["k=1"]["top1"] == 100.0 and res["k=10"]["top1"] == 100.0


def test_bad_labels_are_explained():
    with pytest.raises(ValueError, match="negative"):
        as_labels(torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="positive"):
        knn_classify(np.ones((4, 3)), np.zeros(4, int), np.ones((2, 3)), np.zeros(2, int), ks=(0,))
    with pytest.raises(ValueError, match="dimension"):
        knn_classify(np.ones((4, 3)), np.zeros(4, int), np.ones((2, 5)), np.zeros(2, int))


def test_backend_choice():
    assert resolve_backend("auto") in BACKENDS
    assert resolve_backend("torch") == "torch"
    with pytest.raises(ValueError, match="unknown"):
        resolve_backend("annoy")
    if "faiss_gpu" not in BACKENDS:
        with pytest.raises(ValueError, match="not available"):
            resolve_backend("faiss_gpu")
