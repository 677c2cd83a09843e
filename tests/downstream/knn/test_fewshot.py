"""Few-shot sampling and few-shot k-NN."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from downstream.knn.fewshot import few_shot_knn, k_for_shots, sample_few_shot


def test_sampling_takes_nu_distinct_images_of_every_class():
    labels = np.repeat(np.arange(6), [30, 25, 40, 12, 50, 21])
    for nu in (1, 5, 10):
        idx = sample_few_shot(labels, nu, seed=3)
        assert len(np.unique(idx)) == len(idx) == 6 * nu
        assert np.array_equal(np.bincount(labels[idx], minlength=6), np.full(6, nu))
    assert np.array_equal(sample_few_shot(labels, 5, 7), sample_few_shot(labels, 5, 7))
    assert not np.array_equal(sample_few_shot(labels, 5, 7), sample_few_shot(labels, 5, 8))


def test_small_class_uses_all_its_images(caplog):
    labels = np.array([0] * 10 + [1] * 2)
    with caplog.at_level(logging.WARNING):
        idx = sample_few_shot(labels, 5, seed=0)
    assert np.bincount(labels[idx]).tolist() == [5, 2]
    assert "only 2" in caplog.text
    with pytest.raises(ValueError, match="nu >= 1"):
        sample_few_shot(labels, 0, seed=0)


def test_few_shot_knn_protocol():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 16)) * 4
    ytr, yte = rng.integers(0, 5, 400), rng.integers(0, 5, 100)
    xtr = centers[ytr] + rng.normal(size=(400, 16))
    xte = centers[yte] + rng.normal(size=(100, 16))
    res = few_shot_knn(xtr, ytr, xte, yte, shots=(1, 5), seeds=(0, 1, 2), backend="torch")
    assert res["nu=1"]["k"] == 1 and res["nu=5"]["k"] == k_for_shots(5) == 20
    assert len(res["nu=1"]["top1"]) == 3
    assert res["nu=1"]["top1_mean"] == pytest.approx(np.mean(res["nu=1"]["top1"]))
    assert res["nu=1"]["top1_std"] == pytest.approx(np.std(res["nu=1"]["top1"]))
    assert res["nu=5"]["top1_mean"] > 95  # well separated clusters
    # k=1: top-5 is top-1 (only one class receives a vote, DINO's min(5, k) rule)
    assert res["nu=1"]["top5"] == res["nu=1"]["top1"]
