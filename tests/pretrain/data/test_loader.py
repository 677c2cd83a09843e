"""Deterministic, resumable, rank-sharded multi-crop loading on real Fashion-MNIST images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from pretrain.data.datasets import FashionMNIST
from pretrain.data.loader import build_eval_loader, build_pretrain_loader, epoch_indices
from pretrain.data.transforms import EvalTransform, MultiCropSpec, MultiCropTransform

SPEC = MultiCropSpec(global_size=32, local_size=16, n_global=2, n_local=2)


@pytest.fixture(scope="module")
def fmnist(fashion_mnist_root):
    return FashionMNIST(fashion_mnist_root, "test")


class IndexLabelled:
    """Real images, labelled by their index (to see which samples a loader delivered); counts loads."""

    def __init__(self, base, n: int) -> None:
        self.base, self.n, self.loads = base, n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        self.loads += 1
        return self.base[index][0], index


def _epoch(loader, epoch: int, start_batch: int = 0):
    loader.set_epoch(epoch, start_batch)
    return list(loader)


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_batch_shapes_dtypes_and_length(fmnist):
    loader = build_pretrain_loader(Subset(fmnist, range(50)), MultiCropTransform(SPEC), batch_size=8,
                                   num_workers=0, seed=0)
    assert len(loader) == 6  # 50 // 8, last partial batch dropped
    batches = _epoch(loader, 0)
    assert len(batches) == 6
    globals_, locals_, labels = batches[0]
    assert globals_.shape == (2, 8, 3, 32, 32) and globals_.dtype == torch.uint8
    assert locals_.shape == (2, 8, 3, 16, 16) and locals_.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.shape == (8,)
    assert set(labels.tolist()) <= set(range(10))
    assert torch.equal(globals_[:, :, 0], globals_[:, :, 1])  # gray replicated to 3 channels


def test_no_local_crops_gives_an_empty_leading_dim(fmnist):
    spec = MultiCropSpec(global_size=32, local_size=16, n_local=0)
    loader = build_pretrain_loader(Subset(fmnist, range(8)), MultiCropTransform(spec), 4, 0, seed=1)
    _, locals_, _ = next(iter(loader))
    assert locals_.shape == (0, 4, 3, 16, 16) and locals_.dtype == torch.uint8


@pytest.mark.slow
def test_crops_do_not_depend_on_worker_count(fmnist):
    data = Subset(fmnist, range(40))
    serial = build_pretrain_loader(data, MultiCropTransform(SPEC), 8, num_workers=0, seed=5)
    parallel = build_pretrain_loader(data, MultiCropTransform(SPEC), 8, num_workers=2, seed=5)
    for epoch in (0, 1):  # the second epoch reuses the persistent workers
        _assert_same(_epoch(serial, epoch), _epoch(parallel, epoch))
    # A resumed epoch in the worker processes matches the serial full pass too.
    _assert_same(_epoch(serial, 1)[3:], _epoch(parallel, 1, start_batch=3))


def test_resume_mid_epoch_gives_the_same_batches_without_loading_skipped_ones(fmnist):
    data = IndexLabelled(fmnist, 48)
    loader = build_pretrain_loader(data, MultiCropTransform(SPEC), 6, num_workers=0, seed=11)
    full = _epoch(loader, 3)
    data.loads = 0
    resumed = _epoch(loader, 3, start_batch=5)
    assert data.loads == 3 * 6  # only batches 5, 6, 7 were decoded
    _assert_same(full[5:], resumed)
    # The next set_epoch without start_batch gives a complete epoch again.
    assert len(_epoch(loader, 4)) == len(loader) == 8
    with pytest.raises(ValueError, match="start_batch"):
        loader.set_epoch(0, start_batch=9)


def test_epochs_and_seeds_change_order_and_crops(fmnist):
    data = IndexLabelled(fmnist, 32)
    loader = build_pretrain_loader(data, MultiCropTransform(SPEC), 32, 0, seed=0)
    e0, e1 = _epoch(loader, 0)[0], _epoch(loader, 1)[0]
    assert sorted(e0[2].tolist()) == list(range(32)) and e0[2].tolist() != e1[2].tolist()
    other_seed = _epoch(build_pretrain_loader(data, MultiCropTransform(SPEC), 32, 0, seed=1), 0)[0]
    assert e0[2].tolist() != other_seed[2].tolist()
    # Same sample, same epoch -> same crops whatever batch it lands in; new epoch -> new crops.
    pos0, pos1 = e0[2].tolist().index(7), e1[2].tolist().index(7)
    assert not torch.equal(e0[0][:, pos0], e1[0][:, pos1])
    again = _epoch(loader, 0)[0]
    assert torch.equal(again[0], e0[0]) and torch.equal(again[1], e0[1])


@pytest.mark.parametrize("n, world_size", [(48, 3), (50, 4)])
def test_rank_shards_are_equal_disjoint_and_complete(fmnist, n, world_size):
    shards = [epoch_indices(n, seed=2, epoch=1, rank=r, world_size=world_size) for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    union = np.concatenate(shards)
    assert set(union.tolist()) == set(range(n))  # complete
    assert len(union) - len(set(union.tolist())) == (-n) % world_size  # only the padding repeats
    data = IndexLabelled(fmnist, n)
    per_rank = -(-n // world_size)
    seen = []
    for rank in range(world_size):
        loader = build_pretrain_loader(data, MultiCropTransform(SPEC), per_rank, 0, seed=2, rank=rank,
                                       world_size=world_size)
        assert len(loader) == 1
        seen.append(_epoch(loader, 1)[0][2].tolist())
    assert [sorted(s) for s in seen] == [sorted(s.tolist()) for s in shards]
    if n % world_size == 0:
        assert sorted(sum(seen, [])) == list(range(n))  # disjoint and complete


def test_unlabelled_dataset_gets_minus_one_and_bad_arguments_fail(fmnist):
    images = [fmnist[i][0] for i in range(8)]
    loader = build_pretrain_loader(images, MultiCropTransform(SPEC), 4, 0, seed=0)
    assert next(iter(loader))[2].tolist() == [-1] * 4
    with pytest.raises(ValueError, match="rank"):
        build_pretrain_loader(images, MultiCropTransform(SPEC), 4, 0, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch"):
        build_pretrain_loader(images, MultiCropTransform(SPEC), 16, 0, seed=0)


def test_eval_loader_keeps_order_and_last_batch(fmnist):
    data = Subset(fmnist, range(21))
    loader = build_eval_loader(data, EvalTransform(32, resize=32), batch_size=8, num_workers=0)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(8, 3, 32, 32)] * 2 + [(5, 3, 32, 32)]
    assert all(b[0].dtype == torch.uint8 and b[1].dtype == torch.int64 for b in batches)
    assert torch.cat([b[1] for b in batches]).tolist() == fmnist.labels[:21].tolist()


def test_python_random_transforms_are_reproducible_and_global_state_is_restored(fmnist):
    import random

    def jitter(image):  # old-style augmentation drawing from Python's `random` and NumPy
        shift = random.randint(0, 50) + int(np.random.randint(0, 50))
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).expand(3, 28, 28)
        return [x.clamp(max=255 - shift) + shift], []

    data = Subset(fmnist, range(16))
    random.seed(123)
    before = random.random()
    random.seed(123)
    first = _epoch(build_pretrain_loader(data, jitter, 4, 0, seed=9), 0)
    assert random.random() == before  # the loader did not consume the caller's random stream
    _assert_same(first, _epoch(build_pretrain_loader(data, jitter, 4, 0, seed=9), 0))
