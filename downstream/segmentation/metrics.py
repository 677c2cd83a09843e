"""Segmentation metrics from a confusion matrix accumulated over the whole evaluation set.

``confusion[t, p]`` counts the pixels of true class t predicted as p (ignored pixels, label 255,
left out). IoU_c = TP / (TP + FP + FN); mIoU is the mean over the classes that occur in the
truth or the prediction - a class absent from both has IoU 0 / 0 and is left out of the mean, as
mmsegmentation's ``total_area_to_metrics`` does (its ``nanmean``). Pixel accuracy = trace / total.
All in percent.
"""

from __future__ import annotations

import numpy as np
import torch


def update_confusion(confusion: torch.Tensor, pred: torch.Tensor, target: torch.Tensor,
                     ignore_index: int = 255) -> torch.Tensor:
    """Add (B, H, W) predictions against (B, H, W) labels to the (K, K) ``confusion`` (in place)."""
    k = confusion.shape[0]
    keep = target != ignore_index
    idx = target[keep].long() * k + pred[keep].long()
    confusion += torch.bincount(idx, minlength=k * k).view(k, k).to(confusion)
    return confusion


def scores(confusion: np.ndarray | torch.Tensor) -> dict[str, float | list[float | None]]:
    """``{"mIoU", "pixel_acc", "per_class_iou"}`` (percent) of a (K, K) confusion matrix.

    ``per_class_iou[c]`` is None for a class absent from both truth and prediction (not in the mean).
    """
    cm = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan) * 100
    total = cm.sum()
    return {"mIoU": float(np.nanmean(iou)) if present.any() else 0.0,
            "pixel_acc": float(100 * tp.sum() / total) if total else 0.0,
            "per_class_iou": [None if np.isnan(v) else float(v) for v in iou]}


def majority_confusion(confusion: np.ndarray | torch.Tensor, majority: int) -> np.ndarray:
    """The confusion matrix of predicting class ``majority`` everywhere, with the same truth."""
    cm = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
    out = np.zeros_like(cm)
    out[:, majority] = cm.sum(1)
    return out
