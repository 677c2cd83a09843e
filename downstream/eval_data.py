"""Labelled evaluation data for the downstream evaluators: ImageFolder, Fashion-MNIST or FFCV.

A :class:`DataSpec` names the dataset; the loaders yield ``(uint8 images (B, 3, H, W), int64
labels (B,))`` in dataset order (resize the short side, center crop; normalisation happens on
the device in :func:`pretrain.features.represent`).

Unreadable image files are left out, never replaced: the image folder is built with
``skip_unreadable=True`` and the loader drops those items, so every feature row is the image
its label belongs to; :func:`skipped_files` lists them for the evaluator's report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Subset

from downstream.image_input import ImageInput
from pretrain.configuration import choice
from pretrain.data import EvalTransform, build_dataset, build_eval_loader
from pretrain.data.ffcv.eval_loader import build_ffcv_eval_loader

log = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("imagefolder", "fashion_mnist", "ffcv")
_DEFAULT_SPLIT = {("imagefolder", "train"): "train", ("imagefolder", "test"): "val",
                  ("fashion_mnist", "train"): "train", ("fashion_mnist", "test"): "test"}


@dataclass
class DataSpec(ImageInput):
    """One labelled image set.

    ``split`` empty picks the role's usual split: ImageFolder ``root/train`` and ``root/val``
    (or ``root`` itself when that subfolder does not exist), Fashion-MNIST ``train`` / ``test``.
    ``image_size`` 0 means the model's own input size (the pretraining crop size recorded in our
    checkpoints, 224 otherwise): manifold-key models only accept that size.
    ``resize`` 0 means ``round(image_size / 0.875)`` (256 for 224); resize = image_size crops nothing.
    ``max_samples`` > 0 keeps an evenly spaced subset (class balance kept for sorted folders).
    """

    dataset: str = choice(*DATASETS)
    root: str = ""
    split: str = ""
    ffcv_path: str = ""
    image_size: int = 0  # (ImageInput's key) 0: the model's own input size
    resize: int = 0
    interpolation: str = choice("bicubic", "bilinear", "nearest")
    batch_size: int = 128
    num_workers: int = 4
    max_samples: int = 0


def _split_for(spec: DataSpec, role: str) -> str | None:
    if spec.split:
        return spec.split
    split = _DEFAULT_SPLIT[(spec.dataset, role)]
    if spec.dataset == "imagefolder" and not (Path(spec.root) / split).is_dir():
        return None  # root itself is the class folder tree
    return split


def dataset_targets(dataset: Any) -> np.ndarray:
    """Labels (N,) int64 of a dataset (or Subset) without decoding images."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    return np.asarray(dataset.targets, dtype=np.int64)


def skipped_files(data: Any) -> list[str]:
    """Unreadable files met so far by a loader or dataset, in dataset order.

    Loaders, views and Subsets are unwrapped; a Subset counts only its own samples (two Subsets
    of one folder, e.g. train and held-out val, are counted apart). [] for datasets that cannot
    have any (Fashion-MNIST; FFCV files: the writer already left them out).
    """
    indices = None
    while not hasattr(data, "skipped_paths") and hasattr(data, "dataset"):
        if isinstance(data, Subset):
            own = np.asarray(data.indices, dtype=np.int64)
            indices = own if indices is None else own[indices]
        data = data.dataset
    if not hasattr(data, "skipped_paths"):
        return []
    if indices is None:
        return list(data.skipped_paths)
    bad = set(data.skipped_paths)
    return [data.samples[i][0] for i in indices.tolist() if data.samples[i][0] in bad]


def build_eval_dataset(spec: DataSpec, role: str, transform: Callable | None = None) -> Any:
    """The map-style dataset of ``spec`` for ``role`` ("train" or "test"), optionally subsampled.

    An unreadable image file gives the item None (see :func:`skipped_files`); the loaders of
    this module and `pretrain.data.loader.collate_readable` drop it.

    Raises:
        ValueError: Unknown dataset name, missing root, or the FFCV path (use :func:`build_eval_loader_for`).
    """
    if spec.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {spec.dataset!r}; choose one of {', '.join(DATASETS)}")
    if spec.dataset == "ffcv":
        raise ValueError("an FFCV file is read by its own loader: use build_eval_loader_for")
    if not spec.root:
        raise ValueError(f"{role} data needs a root folder: set {role}_data.root=... (or data.root=...)")
    split = _split_for(spec, role)
    if spec.dataset == "fashion_mnist" and split == "val":
        # never the test split in disguise: choosing anything on it would tune on the test set
        raise ValueError("Fashion-MNIST has no split 'val': use split=train_holdout (10k validation images "
                         "held out of the 60k) with split=train_fit (the other 50k) as the training side, "
                         "or split=test for the final report")
    dataset = build_dataset(spec.dataset, spec.root, split, transform=transform, skip_unreadable=True)
    if 0 < spec.max_samples < len(dataset):
        keep = np.linspace(0, len(dataset) - 1, spec.max_samples).round().astype(np.int64)
        dataset = Subset(dataset, keep.tolist())
    log.info("%s data: %s %s split=%s, %d images", role, spec.dataset, spec.root, split, len(dataset))
    return dataset


def eval_transform(spec: DataSpec, image_size: int) -> EvalTransform:
    """Resize + center crop to ``image_size`` (uint8)."""
    return EvalTransform(image_size, spec.resize or None, spec.interpolation)


def build_eval_loader_for(spec: DataSpec, role: str, image_size: int, pin_memory: bool = False) -> Iterable:
    """Loader of (uint8 (B, 3, S, S), int64 (B,)) batches over ``spec`` in dataset order, S = image_size."""
    if spec.dataset == "ffcv":
        return _ffcv_eval_loader(spec, image_size)
    dataset = build_eval_dataset(spec, role)
    return build_eval_loader(dataset, eval_transform(spec, image_size), spec.batch_size, spec.num_workers,
                             pin_memory)


def _ffcv_eval_loader(spec: DataSpec, image_size: int) -> Iterable:
    if spec.max_samples:
        log.warning("dataset=ffcv reads every sample: max_samples=%d is ignored", spec.max_samples)
    try:
        return build_ffcv_eval_loader(spec.ffcv_path or spec.root, image_size=image_size,
                                      batch_size=spec.batch_size, num_workers=spec.num_workers,
                                      resize=spec.resize or None, interpolation=spec.interpolation)
    except ImportError as exc:
        raise ValueError(f"FFCV input is not supported in this install ({exc}); export the images to an "
                         "ImageFolder or install the ffcv extra (pip install -e .[ffcv])") from None
