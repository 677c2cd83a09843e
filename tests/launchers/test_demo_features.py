"""The demo's fast 28 px feature input equals what the evaluation loader delivers."""

from __future__ import annotations

import torch

from launchers.demo import fashion_batches
from pretrain.data.datasets import FashionMNIST
from pretrain.data.loader import build_eval_loader
from pretrain.data.transforms import EvalTransform


def test_native_size_batches_equal_the_eval_transform_loader(fashion_mnist_root):
    split = FashionMNIST(fashion_mnist_root, "test")
    split.images, split.labels = split.images[:700], split.labels[:700]  # a slice keeps it fast
    fast = fashion_batches(split, 28, batch_size=256)
    slow = build_eval_loader(split, EvalTransform(28, resize=28), 256, 0)
    assert [x.shape[0] for x, _ in fast] == [256, 256, 188]
    for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
        assert xf.dtype == xs.dtype == torch.uint8 and xf.shape[1:] == (3, 28, 28)
        assert torch.equal(xf, xs) and torch.equal(yf, ys)
    other = fashion_batches(split, 56)  # any other size goes through the transform
    x, _ = next(iter(other))
    assert x.shape[1:] == (3, 56, 56)
