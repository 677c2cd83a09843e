"""Batches of (normalised image, label at the input size, label at its own size) for the linear head.

Images are resized to ``size`` x ``size`` (bilinear) for the backbone; the training label is resized
the same way (nearest); the evaluation keeps each label at its own size, where the logits are
upsampled to it (the metric is computed at the label's resolution).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from downstream.segmentation.data import Sample, read_pair


class SegmentationSet:
    """Index -> (image (3, S, S) float normalised, label (S, S) int64, label (H, W) int64)."""

    def __init__(self, samples: Sequence[Sample], num_classes: int, reduce_zero_label: bool, size: int,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        self.samples, self.num_classes, self.reduce, self.size = list(samples), num_classes, reduce_zero_label, size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, label = read_pair(self.samples[index], self.num_classes, self.reduce)
        s = (self.size, self.size)
        small = np.asarray(Image.fromarray(image).resize(s, Image.BILINEAR))
        x = (torch.from_numpy(small.copy()).permute(2, 0, 1).float() / 255 - self.mean) / self.std
        y_small = np.asarray(Image.fromarray(label.astype(np.uint8)).resize(s, Image.NEAREST)).astype(np.int64)
        return x, torch.from_numpy(y_small), torch.from_numpy(label)


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    images, small, full = zip(*items)
    return torch.stack(images), torch.stack(small), list(full)


def segmentation_loader(dataset: SegmentationSet, batch_size: int, num_workers: int) -> DataLoader:
    """In order (features are extracted once, so no shuffling is needed here)."""
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate)
