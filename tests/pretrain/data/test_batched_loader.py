"""Batched in-memory multi-crop loader: crop geometry, determinism, resume, real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.data.batched_loader import BatchedMultiCropLoader, cut_crops, random_resized_boxes
from pretrain.data.datasets import FashionMNIST
from pretrain.data.transforms import MultiCropSpec


def test_boxes_follow_random_resized_crop_rules():
    gen = torch.Generator().manual_seed(0)
    boxes = random_resized_boxes(5000, 28, 28, (0.1, 0.4), (3 / 4, 4 / 3), gen)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 28).all() and (boxes[:, 3] <= 28).all()
    frac = w * h / 784
    # rounding the side lengths moves the area a little outside the nominal range
    assert frac.min() >= 0.1 * 0.75 and frac.max() <= 0.4 * 1.3
    assert ((w / h) > 0.6).all() and ((w / h) < 1.7).all()
    assert frac.std() > 0.05, "areas must vary"


def test_full_scale_crop_of_whole_image_is_identity():
    img = torch.arange(3 * 8 * 8, dtype=torch.float32).view(1, 3, 8, 8).remainder(256).to(torch.uint8)
    gen = torch.Generator().manual_seed(0)
    out = cut_crops(img, 1, 8, (1.0, 1.0), 0.0, gen)
    # scale 1 with ratio in range only fits as the whole image: an identity resample
    assert torch.equal(out[0], img)


def _loader(images, labels, **kw):
    spec = MultiCropSpec(global_size=28, local_size=14, n_local=3, global_scale=(0.4, 1.0),
                         local_scale=(0.1, 0.4))
    return BatchedMultiCropLoader(images, labels, spec, batch_size=16, seed=3, **kw)


@pytest.fixture(scope="module")
def fmnist_small(fashion_mnist_root):
    ds = FashionMNIST(fashion_mnist_root, "test")
    return ds.images[:200], ds.labels[:200]


def test_contract_shapes_and_labels(fmnist_small):
    images, labels = fmnist_small
    loader = _loader(images, labels)
    assert len(loader) == 200 // 16
    loader.set_epoch(0)
    g, loc, y = next(iter(loader))
    assert g.shape == (2, 16, 3, 28, 28) and g.dtype == torch.uint8
    assert loc.shape == (3, 16, 3, 14, 14) and loc.dtype == torch.uint8
    assert y.dtype == torch.int64 and set(y.tolist()) <= set(range(10))
    assert not torch.equal(g[0], g[1]), "two global views differ"


def test_resume_mid_epoch_gives_identical_batches(fmnist_small):
    images, labels = fmnist_small
    loader = _loader(images, labels)
    loader.set_epoch(1)
    full = list(loader)
    loader.set_epoch(1, start_batch=5)
    tail = list(loader)
    assert len(tail) == len(full) - 5
    for a, b in zip(full[5:], tail):
        assert all(torch.equal(x, z) for x, z in zip(a, b))
    loader.set_epoch(2)
    assert not torch.equal(next(iter(loader))[0], full[0][0]), "epochs differ"


def test_ranks_are_disjoint(fmnist_small):
    images, labels = fmnist_small
    seen = []
    for rank in (0, 1):
        loader = _loader(images, np.arange(200), rank=rank, world_size=2)
        loader.set_epoch(0)
        seen.append(torch.cat([y for _, _, y in loader]).tolist())
    assert not set(seen[0]) & set(seen[1])


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="uint8"):
        _loader(np.zeros((20, 28, 28), np.float32), np.zeros(20))
    with pytest.raises(ValueError, match="do not fill one batch"):
        _loader(np.zeros((4, 28, 28), np.uint8), np.zeros(4))
