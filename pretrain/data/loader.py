"""Torchvision-path loaders: deterministic, resumable multi-crop pretraining batches.

Pretraining batches are ``(global_crops, local_crops, labels)``: uint8 (G, B, 3, Hg, Wg),
uint8 (L, B, 3, Hl, Wl) and int64 (B,) (-1 where the dataset has no label).

Determinism: the sample order is a permutation drawn from (seed, epoch), padded to a multiple of
world_size and dealt to ranks round-robin; each sample's augmentation runs with torch's (and
Python's and NumPy's) global generator seeded from (seed, epoch, dataset index), the previous
states restored afterwards, so crops depend neither on the number of workers nor on where an
epoch was resumed (`set_epoch(e, start_batch=k)` yields exactly batches k.. of the full epoch,
without decoding the skipped ones).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """63-bit seed of one sample's augmentation, a hash of (seed, epoch, dataset index)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, epoch, index]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def epoch_indices(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Dataset indices rank ``rank`` visits in ``epoch``: a (seed, epoch) permutation, padded by
    wrapping around to a multiple of world_size, then every world_size-th element from ``rank``."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    per_rank = -(-n // world_size)
    order = np.resize(order, per_rank * world_size)  # np.resize repeats from the start: the padding
    return order[rank::world_size]


class _EpochBatchSampler:
    """Yields lists of (dataset index, sample seed) for one rank; lives in the main process."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0
        self.num_batches = -(-n // world_size) // batch_size

    def __len__(self) -> int:
        return self.num_batches - self.start_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        indices = epoch_indices(self.n, self.seed, self.epoch, self.rank, self.world_size)
        for b in range(self.start_batch, self.num_batches):
            chunk = indices[b * self.batch_size: (b + 1) * self.batch_size]
            yield [(int(i), sample_seed(self.seed, self.epoch, int(i))) for i in chunk]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run per-image augmentation single-threaded (as DataLoader workers do anyway): on tiny
    images intra-op threads only add synchronisation, measured 25x slower on a loaded 2-core CPU
    when num_workers=0 runs the transforms in the training process."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's, Python's and NumPy's global generators for one sample, restoring them after,
    so any transform (torchvision v2 draws from torch, older code from `random`) is reproducible."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class _SeededView:
    """Dataset view whose item ``(index, seed)`` is ``transform(dataset[index])`` under that seed."""

    def __init__(self, dataset: Any, transform: Callable | None) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        index, seed = key
        with _seeded(seed), _one_thread():
            return _apply(self.dataset[index], self.transform)


def _apply(item: Any, transform: Callable | None) -> tuple[Any, int]:
    image, label = item if isinstance(item, (tuple, list)) and len(item) == 2 else (item, None)
    return (transform(image) if transform is not None else image), (-1 if label is None else int(label))


class _CollateCrops:
    """Stack per-sample crop lists into crop-major batches (G, B, 3, H, W) and (L, B, 3, H, W)."""

    def __init__(self, local_shape: tuple[int, int, int]) -> None:
        self.local_shape = local_shape

    def __call__(self, samples: Sequence[tuple[tuple[list[torch.Tensor], list[torch.Tensor]], int]]):
        batch = len(samples)
        globals_ = torch.stack([torch.stack(crops[0]) for crops, _ in samples], dim=1)
        if samples[0][0][1]:
            locals_ = torch.stack([torch.stack(crops[1]) for crops, _ in samples], dim=1)
        else:
            locals_ = torch.empty((0, batch, *self.local_shape), dtype=torch.uint8)
        labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        return globals_, locals_, labels


class PretrainLoader:
    """Iterable of multi-crop batches for one rank; call `set_epoch` before each epoch.

    ``len(loader)`` is the number of full batches per epoch on this rank (the last partial
    batch is dropped); all ranks get the same number.
    """

    def __init__(self, loader: DataLoader, sampler: _EpochBatchSampler) -> None:
        self._loader, self._sampler = loader, sampler
        self.dataset = loader.dataset.dataset
        self.batch_size = sampler.batch_size

    def __len__(self) -> int:
        return self._sampler.num_batches

    @property
    def epoch(self) -> int:
        return self._sampler.epoch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch to iterate next, starting at batch ``start_batch`` (for resuming)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch must be in [0, {len(self)}], got {start_batch}")
        self._sampler.epoch, self._sampler.start_batch = int(epoch), int(start_batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return iter(self._loader)


def build_pretrain_loader(dataset: Any, transform: Callable, batch_size: int, num_workers: int, seed: int,
                          rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                          prefetch_factor: int = 2) -> PretrainLoader:
    """Build the torchvision-path pretraining loader.

    Args:
        dataset: Map-style dataset returning ``(image, label)`` (or just an image: label -1),
            e.g. `ImageFolderDataset` or `FashionMNIST` built without a transform.
        transform: Usually a `MultiCropTransform`; maps an image to (list of G, list of L) uint8 crops.
        batch_size: Samples per batch on this rank.
        num_workers: Decoding processes (0: in the calling process). Workers persist across epochs.
        seed: Base seed of the order and of the augmentations.
        rank: This process's rank.
        world_size: Number of ranks sharing the data.
        pin_memory: Pin batches for faster asynchronous host-to-device copies.
        prefetch_factor: Batches prefetched per worker.

    Returns:
        A `PretrainLoader` yielding (uint8 (G, B, 3, Hg, Wg), uint8 (L, B, 3, Hl, Wl), int64 (B,)).
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    sampler = _EpochBatchSampler(len(dataset), batch_size, seed, rank, world_size)
    if sampler.num_batches == 0:
        raise ValueError(f"{len(dataset)} samples over {world_size} rank(s) do not fill one batch of {batch_size}")
    spec = getattr(transform, "spec", None)
    local_size = spec.local_size if spec is not None else 0
    loader = DataLoader(
        _SeededView(dataset, transform), batch_sampler=sampler, num_workers=num_workers,
        collate_fn=_CollateCrops((3, local_size, local_size)), pin_memory=pin_memory,
        persistent_workers=num_workers > 0, prefetch_factor=prefetch_factor if num_workers > 0 else None,
    )
    return PretrainLoader(loader, sampler)


class _TransformedView:
    def __init__(self, dataset: Any, transform: Callable | None) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int] | None:
        with _one_thread():
            item = self.dataset[index]
            return None if item is None else _apply(item, self.transform)


def collate_readable(samples: Sequence[Any]) -> Any:
    """``default_collate`` over the samples that are not None.

    None is what a dataset built with ``skip_unreadable=True`` returns for an unreadable file:
    dropping it here keeps every row paired with its own image's label. A batch in which no
    file was readable becomes (uint8 (0,), int64 (0,)): consumers skip empty batches.
    """
    kept = [s for s in samples if s is not None]
    if not kept:
        return torch.empty((0,), dtype=torch.uint8), torch.empty((0,), dtype=torch.int64)
    return default_collate(kept)


def build_eval_loader(dataset: Any, transform: Callable | None, batch_size: int, num_workers: int,
                      pin_memory: bool = False) -> DataLoader:
    """Sequential loader over the whole dataset (no shuffling, last batch kept).

    Items that are None (unreadable files of a dataset built with ``skip_unreadable=True``) are
    dropped from their batch (`collate_readable`), so a batch may hold fewer than ``batch_size``
    rows, or none.

    Args:
        dataset: Map-style dataset returning ``(image, label)`` (or None for a skipped file).
        transform: Usually an `EvalTransform`, mapping an image to uint8 (3, H, W); None if the
            dataset already returns such tensors.
        batch_size: Samples per batch.
        num_workers: Decoding processes.
        pin_memory: Pin batches for faster host-to-device copies.

    Returns:
        DataLoader yielding (uint8 images (B, 3, H, W), int64 labels (B,)) in dataset order.
    """
    return DataLoader(_TransformedView(dataset, transform), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=False,
                      collate_fn=collate_readable)
