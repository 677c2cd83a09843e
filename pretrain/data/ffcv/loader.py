"""FFCV multi-crop pretraining loader (decode once, crop many), same batches as the torchvision path.

Batches are ``(global_crops, local_crops, labels)``: uint8 (G, B, 3, Hg, Wg), uint8
(L, B, 3, Hl, Wl) and int64 (B,), exactly like `pretrain.data.loader.PretrainLoader`; the
augmentation recipe is the same `MultiCropSpec`. Sample order is
`pretrain.data.loader.epoch_indices` (a (seed, epoch) permutation dealt round-robin to ranks), so
both loaders visit the same samples in the same order; crops are a function of
(seed, epoch, dataset index) (`pretrain.data.ffcv.kernels`), so a resumed epoch
(``set_epoch(e, start_batch=k)``, which never decodes the skipped batches) sees the same crops.

Colour augmentation runs either in the loader threads (numba, the default) or on the device
after the uint8 copy (``colour_on_device=True``, `pretrain.data.device_colour`).

References: Leclerc et al., "FFCV: Accelerating Training by Removing Data Bottlenecks", CVPR 2023;
Bordes et al., FFCV-SSL (2023), whose pipelines decode every image once per crop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pretrain.data.ffcv.eval_loader import FFCVEvalLoader, build_ffcv_eval_loader  # noqa: F401 - re-export
from pretrain.data.ffcv.support import decoding_threads, import_ffcv
from pretrain.data.loader import epoch_indices
from pretrain.data.transforms import MultiCropSpec

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class FFCVPretrainLoader:
    """Iterable of multi-crop batches from a ``.beton`` (see `pretrain.data.ffcv.writer`) for one rank.

    Call `set_epoch` before each epoch. ``len(loader)`` is the number of full batches per epoch
    on this rank (the last partial batch is dropped); all ranks get the same number.

    Args:
        path: The ``.beton`` file with fields ``image`` (RGBImageField) and ``label`` (IntField).
        spec: Augmentation parameters (the torchvision path's `MultiCropSpec`).
        batch_size: Samples per batch on this rank.
        num_workers: Decoding threads (ffcv runs numba kernels in a thread pool).
        seed: Base seed of the order and of the augmentations.
        rank: This process's rank.
        world_size: Number of ranks sharing the data.
        device: Where batches are delivered (None: CPU tensors).
        colour_on_device: Run jitter / grayscale / blur / solarize on ``device`` instead of in the
            loader threads (flip and crops stay in the loader).
        batches_ahead: Batches prepared in advance.
        redecode: Decode the JPEG once per crop, as FFCV-SSL does (benchmark baseline only).

    Raises:
        ImportError: ffcv is not installed (with install instructions).
        FileNotFoundError: ``path`` does not exist.
        ValueError: Bad rank / world size, or too few samples for one batch.
    """

    def __init__(self, path: str | Path, spec: MultiCropSpec, batch_size: int, num_workers: int, seed: int,
                 rank: int = 0, world_size: int = 1, device: torch.device | str | None = None,
                 colour_on_device: bool = False, batches_ahead: int = 2, redecode: bool = False) -> None:
        import_ffcv()
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist; write it with `attmask-write-beton` "
                                    f"(python -m pretrain.data.ffcv.writer --help)")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if colour_on_device and device is None:
            raise ValueError("colour_on_device=True needs a device; pass device='cuda' (or 'cpu')")
        self.path, self.spec, self.batch_size = str(path), spec, int(batch_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.device = torch.device(device) if device is not None else None
        self.epoch, self.start_batch = 0, 0
        self._epoch_cell = np.zeros(1, dtype=np.int64)  # read by the compiled decoder at every batch
        self._iterator = None
        self.num_samples = _count_samples(self.path)
        self.num_batches = -(-self.num_samples // world_size) // self.batch_size
        if self.num_batches == 0:
            raise ValueError(f"{self.num_samples} samples over {world_size} rank(s) do not fill one batch "
                             f"of {batch_size}")
        self._loader = self._build(num_workers, colour_on_device, batches_ahead, redecode)
        self._device_aug = None
        if colour_on_device:
            from pretrain.data.device_colour import DeviceColourAugment
            self._device_aug = DeviceColourAugment(spec, seed=self.seed)

    def _build(self, num_workers: int, colour_on_device: bool, batches_ahead: int, redecode: bool):
        from ffcv.fields.basics import IntDecoder
        from ffcv.loader import Loader
        from ffcv.pipeline import PipelineSpec

        from pretrain.data.ffcv.decoder import MultiCropDecoder
        from pretrain.data.ffcv.order import EpochOrder

        threads = torch.get_num_threads()
        decoder = MultiCropDecoder(self.spec, self.seed, self._epoch_cell, colour=not colour_on_device,
                                   redecode=redecode)
        self._order = EpochOrder(self)
        loader = Loader(self.path, batch_size=self.batch_size, num_workers=decoding_threads(num_workers),
                        order=self._order,
                        seed=self.seed, drop_last=True, batches_ahead=batches_ahead,
                        pipelines={"image": PipelineSpec("image", decoder=decoder),
                                   "label": PipelineSpec("label", decoder=IntDecoder())})
        torch.set_num_threads(threads)  # ffcv's Compiler sets torch's thread count to num_workers
        return loader

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch to iterate next, starting at batch ``start_batch`` (for resuming)."""
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch must be in [0, {len(self)}], got {start_batch}")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def epoch_order(self) -> np.ndarray:
        """Dataset indices this rank visits in the selected epoch, from ``start_batch`` on."""
        order = epoch_indices(self.num_samples, self.seed, self.epoch, self.rank, self.world_size)
        return order[self.start_batch * self.batch_size: self.num_batches * self.batch_size].astype(np.uint64)

    def __iter__(self) -> Iterator[Batch]:
        self.close()  # a half-consumed epoch must stop decoding before the epoch cell changes
        self._epoch_cell[0] = self.epoch
        if self.start_batch == self.num_batches:
            return iter(())
        threads = torch.get_num_threads()
        self._iterator = iter(self._loader)
        torch.set_num_threads(threads)  # ffcv's Loader.__iter__ resets it to num_workers
        return self._batches(self._iterator, threads, self.start_batch)

    def _batches(self, iterator, threads: int, first_batch: int) -> Iterator[Batch]:
        spec, g_bytes = self.spec, 3 * self.spec.global_size ** 2
        for step, (crops, labels) in enumerate(iterator, start=first_batch):
            torch.set_num_threads(threads)
            flat = torch.from_numpy(crops).view(-1)
            batch = crops.shape[0]
            split = spec.n_global * batch * g_bytes
            global_crops = flat[:split].view(spec.n_global, batch, 3, spec.global_size, spec.global_size)
            local_crops = flat[split:].view(spec.n_local, batch, 3, spec.local_size, spec.local_size)
            labels = torch.from_numpy(labels).view(-1).to(torch.int64)
            if self.device is None or self.device.type == "cpu":
                # ffcv reuses its buffers a few batches later: hand out tensors the caller owns.
                global_crops, local_crops, labels = global_crops.clone(), local_crops.clone(), labels.clone()
            else:
                global_crops = global_crops.to(self.device, non_blocking=True)
                local_crops = local_crops.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
            if self._device_aug is not None:
                global_crops, local_crops = self._device_aug(global_crops, local_crops, self.epoch, step, self.rank)
            yield global_crops, local_crops, labels

    def close(self) -> None:
        """Stop the background thread of an unfinished epoch (safe to call any time)."""
        if self._iterator is not None:
            self._iterator.close()
            self._iterator.join(timeout=30)
            self._iterator = None


def _count_samples(path: str) -> int:
    """Number of samples in a beton, after checking it has the fields the loader reads."""
    from ffcv.reader import Reader

    reader = Reader(path)
    missing = sorted({"image", "label"} - set(reader.handlers))
    if missing:
        raise ValueError(f"{path} lacks the field(s) {missing} (it has {sorted(reader.handlers)}); write it "
                         f"with `attmask-write-beton`, which stores 'image' and 'label'")
    return int(reader.num_samples)


def build_ffcv_pretrain_loader(path: str | Path, spec: MultiCropSpec, batch_size: int, num_workers: int,
                               seed: int, rank: int = 0, world_size: int = 1,
                               device: torch.device | str | None = None,
                               colour_on_device: bool = False) -> FFCVPretrainLoader:
    """Build the FFCV pretraining loader (see `FFCVPretrainLoader` for the arguments)."""
    return FFCVPretrainLoader(path, spec, batch_size, num_workers, seed, rank=rank, world_size=world_size,
                              device=device, colour_on_device=colour_on_device)
