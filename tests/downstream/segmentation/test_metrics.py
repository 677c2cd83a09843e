"""mIoU / pixel accuracy on a 3x3 hand example (one ignored pixel, one class absent everywhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from downstream.segmentation.metrics import majority_confusion, scores, update_confusion

TRUTH = torch.tensor([[0, 0, 1], [1, 1, 2], [2, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 0, 2], [2, 1, 0]])


def test_confusion_by_hand():
    cm = update_confusion(torch.zeros(4, 4, dtype=torch.int64), PRED[None], TRUTH[None])
    expected = [[1, 1, 0, 0],  # truth 0: one right, one taken for 1
                [1, 2, 0, 0],  # truth 1
                [0, 1, 2, 0],  # truth 2
                [0, 0, 0, 0]]  # class 3: nowhere (and the 255 pixel is not counted)
    assert cm.tolist() == expected


def test_scores_by_hand():
    cm = update_confusion(torch.zeros(4, 4, dtype=torch.int64), PRED[None], TRUTH[None])
    s = scores(cm)
    # IoU = TP / (row + column - TP): 1/3, 2/5, 2/3; class 3 is absent from truth and prediction: left out
    assert s["per_class_iou"][:3] == pytest.approx([100 / 3, 40.0, 200 / 3])
    assert s["per_class_iou"][3] is None
    assert s["mIoU"] == pytest.approx(100 * 7 / 15)  # (1/3 + 2/5 + 2/3) / 3
    assert s["pixel_acc"] == pytest.approx(62.5)  # 5 of the 8 counted pixels


def test_majority_baseline_by_hand():
    cm = update_confusion(torch.zeros(4, 4, dtype=torch.int64), PRED[None], TRUTH[None])
    base = scores(majority_confusion(cm, majority=1))
    assert base["per_class_iou"][:3] == pytest.approx([0.0, 37.5, 0.0])  # class 1: 3 of 8 pixels
    assert base["mIoU"] == pytest.approx(12.5) and base["pixel_acc"] == pytest.approx(37.5)


def test_accumulates_over_batches():
    cm = torch.zeros(4, 4, dtype=torch.int64)
    for _ in range(3):
        update_confusion(cm, PRED[None], TRUTH[None])
    assert int(cm.sum()) == 24 and scores(np.asarray(cm))["pixel_acc"] == pytest.approx(62.5)
