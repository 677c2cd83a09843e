"""Fine-tuning inputs: the BEiT / iBOT training augmentation and the evaluation resize, as float tensors.

Training (timm ``create_transform`` as called by BEiT / iBOT ``run_class_finetuning.py``): random
resized crop (scale 0.08-1, bicubic) - or, for inputs of 32 px or less, a random crop with 4 px
zero padding, the reference's own rule - horizontal flip, RandAugment, normalisation, random
erasing (p 0.25, per-pixel normal noise). RandAugment here is torchvision's (2 ops, magnitude 9),
not timm's ``rand-m9-mstd0.5-inc1`` (which adds magnitude noise of std 0.5 and a different op
list): a documented difference. Evaluation: resize the short side to ``size / 0.875``, centre crop
(no resize for inputs of 32 px or less, as the reference).

Determinism: each item's augmentation is seeded by its (epoch, position) key, so a resumed run
sees exactly the images of an uninterrupted one, whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from pretrain.data.transforms import EvalTransform

SMALL = 32  # inputs at or below this side follow the reference's small-image rules


def train_transform(size: int, mean: Sequence[float], std: Sequence[float], randaug_magnitude: int = 9,
                    randaug_ops: int = 2, erase_p: float = 0.25) -> v2.Compose:
    """PIL image -> normalised float (3, size, size) with the fine-tuning augmentation."""
    crop = (v2.RandomCrop(size, padding=4) if size <= SMALL else
            v2.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=v2.InterpolationMode.BICUBIC, antialias=True))
    steps: list[Any] = [v2.PILToTensor(), crop, v2.RandomHorizontalFlip()]
    if randaug_ops > 0:
        steps.append(v2.RandAugment(num_ops=randaug_ops, magnitude=randaug_magnitude))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if erase_p > 0:
        steps.append(v2.RandomErasing(p=erase_p, value="random"))
    return v2.Compose(steps)


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """PIL image -> normalised float (3, size, size): resize + centre crop (none at <= 32 px)."""
    resize = EvalTransform(size, resize=size if size <= SMALL else None)
    return v2.Compose([resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


class SeededItems:
    """Dataset view whose items are keyed ``(index, seed)``: the transform runs under that seed.

    Args:
        dataset: Returns ``(PIL image, label)``.
        transform: Applied to the RGB image.
    """

    def __init__(self, dataset: Any, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image, label = self.dataset[index]
        if isinstance(image, Image.Image) and image.mode != "RGB":
            image = image.convert("RGB")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), label


class EpochBatches:
    """Batches of ``(index, seed)`` keys: a fixed permutation per epoch, from ``start`` batch on.

    Args:
        size: Number of training images.
        batch_size: Images per batch (the last incomplete batch is dropped, as the reference).
        seed: Run seed.
        epoch: Which epoch's permutation.
        start: First batch to yield (resume in the middle of an epoch).
    """

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int, start: int = 0) -> None:
        self.size, self.batch_size, self.seed, self.epoch, self.start = size, batch_size, seed, epoch, start

    def __len__(self) -> int:
        return self.size // self.batch_size - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        for b in range(self.start, self.size // self.batch_size):
            positions = range(b * self.batch_size, (b + 1) * self.batch_size)
            yield [(int(order[p]), int(np.random.SeedSequence([self.seed, self.epoch, p]).generate_state(1)[0]))
                   for p in positions]


class Plain:
    """Dataset view for evaluation: RGB + ``transform``."""

    def __init__(self, dataset: Any, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image.convert("RGB") if image.mode != "RGB" else image), label
