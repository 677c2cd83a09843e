"""Top-1 / top-5 accuracy (percent) of a classifier over a data loader."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """Number of rows of (B, C) ``logits`` whose label (B,) is among the top k, for each k (k capped at C)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices  # (B, k)
    hits = top == labels.view(-1, 1)
    return {k: int(hits[:, :k].any(dim=1).sum()) for k in ks}


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable, device: torch.device) -> dict[str, float]:
    """``{"top1", "top5", "images"}`` of ``model`` (eval mode) on ``loader``'s (images, labels) batches."""
    was_training = model.training
    model.eval()
    totals, n = {1: 0, 5: 0}, 0
    for images, labels in loader:
        labels = labels.to(device)
        counts = topk_correct(model(images.to(device)), labels)
        totals = {k: totals[k] + counts[k] for k in totals}
        n += labels.numel()
    model.train(was_training)
    if n == 0:
        raise ValueError("the evaluation split holds no image")
    return {"top1": 100.0 * totals[1] / n, "top5": 100.0 * totals[5] / n, "images": n}
