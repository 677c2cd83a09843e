"""Builds the pretraining data path (torchvision or FFCV) and the online k-NN check from a config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Tuple

from pretrain.config import ConfigError, PretrainConfig
from pretrain.data.batched_loader import BatchedMultiCropLoader
from pretrain.data.datasets import build_dataset
from pretrain.data.fashion_mnist import ensure_fashion_mnist
from pretrain.data.loader import build_pretrain_loader
from pretrain.data.transforms import MultiCropSpec, MultiCropTransform
from pretrain.distributed import DistInfo
from pretrain.knn_monitor import KnnMonitor

log = logging.getLogger(__name__)

LOADERS = ("torchvision", "ffcv", "batched")


def crop_spec(cfg: PretrainConfig) -> MultiCropSpec:
    d = cfg.data
    return MultiCropSpec(global_size=d.global_size, local_size=d.local_size, n_global=2,
                         n_local=d.n_local, global_scale=tuple(d.global_scale),
                         local_scale=tuple(d.local_scale))


def resolve_root(dataset: str, root: str) -> str:
    """Fashion-MNIST is fetched into ``root`` (or found system-wide) when missing."""
    if dataset == "fashion_mnist":
        return str(ensure_fashion_mnist(root or "data/fashion-mnist"))
    if not Path(root).is_dir():
        raise ConfigError(f"data root {root!r} does not exist: set data.root to an ImageFolder "
                          "directory (root/<class>/<image>)")
    return root


def build_pretrain_data(cfg: PretrainConfig, dist: DistInfo) -> Tuple[Any, MultiCropSpec, Optional[KnnMonitor]]:
    """The multi-crop loader for this rank, its crop spec, and the k-NN monitor (rank 0)."""
    d = cfg.data
    spec = crop_spec(cfg)
    if d.loader not in LOADERS:
        raise ConfigError(f"data.loader={d.loader!r}: choose one of {LOADERS}")
    if d.loader == "ffcv":
        from pretrain.data.ffcv_loader import build_ffcv_pretrain_loader

        if not d.ffcv_path:
            raise ConfigError("data.loader=ffcv needs data.ffcv_path=<file.beton> "
                              "(write one with attmask-write-beton)")
        loader = build_ffcv_pretrain_loader(d.ffcv_path, spec, batch_size=d.batch_size,
                                            num_workers=d.num_workers, seed=cfg.run.seed,
                                            rank=dist.rank, world_size=dist.world_size)
    elif d.loader == "batched":
        if d.dataset != "fashion_mnist":
            raise ConfigError("data.loader=batched keeps the whole data set in memory and supports "
                              "data.dataset=fashion_mnist; use data.loader=torchvision or ffcv for "
                              f"{d.dataset!r}")
        ds = build_dataset(d.dataset, resolve_root(d.dataset, d.root), "train")
        loader = BatchedMultiCropLoader(ds.images, ds.labels, spec, d.batch_size, cfg.run.seed,
                                        dist.rank, dist.world_size)
    else:
        root = resolve_root(d.dataset, d.root)
        split = "train" if d.dataset == "fashion_mnist" else None
        dataset = build_dataset(d.dataset, root, split)
        loader = build_pretrain_loader(dataset, MultiCropTransform(spec), d.batch_size,
                                       d.num_workers, cfg.run.seed, dist.rank, dist.world_size,
                                       pin_memory=cfg.run.device != "cpu")
    knn = None
    k = cfg.knn
    if k.every_epochs > 0 and dist.is_main:
        knn = KnnMonitor(k.dataset, resolve_root(k.dataset, k.root), k.train_split, k.test_split,
                         k.max_train, k.max_test, k.image_size, k.k, k.temperature,
                         batch_size=256, num_workers=min(d.num_workers, 2),
                         mean=spec.mean, std=spec.std)
    return loader, spec, knn
