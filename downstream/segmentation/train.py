"""Training the linear head on cached frozen features, and evaluating it into a confusion matrix.

The backbone is frozen and there is no augmentation, so each training image's feature map is
computed once and kept (float16); the head then trains for ``epochs`` passes over the cache with
AdamW and a per-step polynomial (power 1) decay, cross-entropy on the logits upsampled (bilinear)
to the label size, label 255 ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from downstream.segmentation.data import IGNORE
from downstream.segmentation.features import patch_feature_map
from downstream.segmentation.head import LinearSegHead, upsample
from downstream.segmentation.metrics import update_confusion

log = logging.getLogger(__name__)


@torch.no_grad()
def cache_features(backbone: nn.Module, loader: Iterable, blocks: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, C, h, w) float16 on the CPU and labels (N, S, S) at the input size."""
    feats, labels = [], []
    for images, small, _ in loader:
        feats.append(patch_feature_map(backbone, images.to(device), blocks).half().cpu())
        labels.append(small)
    return torch.cat(feats), torch.cat(labels)


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K,) pixel count per class of (N, S, S) labels (255 left out)."""
    keep = labels != IGNORE
    return torch.bincount(labels[keep].flatten(), minlength=num_classes)[:num_classes]


def train_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int, lr: float,
               weight_decay: float, batch_size: int, seed: int, device: torch.device) -> LinearSegHead:
    """Fit :class:`LinearSegHead` on (N, C, h, w) features against (N, S, S) labels; returns it in eval mode."""
    torch.manual_seed(seed)
    head = LinearSegHead(features.shape[1], num_classes).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    n = features.shape[0]
    per_epoch = max(1, -(-n // batch_size))
    total, step = epochs * per_epoch, 0
    gen = torch.Generator().manual_seed(seed)
    head.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            if len(idx) < 2 and n >= 2:  # BatchNorm needs two samples
                continue
            for g in opt.param_groups:
                g["lr"] = lr * (1 - step / total)
            x, y = features[idx].to(device).float(), labels[idx].to(device)
            loss = F.cross_entropy(upsample(head(x), tuple(y.shape[-2:])), y, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        log.info("epoch %d/%d: loss %.4f", epoch + 1, epochs, float(loss.detach()))
    return head.eval()


@torch.no_grad()
def evaluate(backbone: nn.Module, head: nn.Module, loader: Iterable, num_classes: int, blocks: int,
             device: torch.device, keep: int = 0) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray]]]:
    """(K, K) int64 confusion matrix over ``loader``; and (truth, prediction) of the first ``keep`` images."""
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    for images, _, full in loader:
        logits = head(patch_feature_map(backbone, images.to(device), blocks).float())
        for i, label in enumerate(full):
            pred = upsample(logits[i:i + 1], tuple(label.shape)).argmax(1)[0].cpu()
            update_confusion(confusion, pred, label)
            if len(kept) < keep:
                kept.append((label.numpy(), pred.numpy()))
    return confusion, kept
