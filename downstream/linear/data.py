"""Feature batches for the linear probe: from cached features, or from augmented images each epoch.

Cached mode (fast): every image is encoded once with the evaluation transform and the heads
train for many epochs on the stored vectors. Augmented mode (fidelity, DINO's protocol): every
epoch re-crops the training images (RandomResizedCrop + horizontal flip) and runs the frozen
backbone again, so the heads see the same augmentation as in the papers.

Unreadable images are left out (counted per set in ``ProbeData.skipped``); feature rows with
NaN / inf are an error naming them, or dropped and counted with ``nonfinite=drop``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from downstream.backbone import RawPixels, build_backbone, input_size
from downstream.checks import handle_nonfinite
from downstream.eval_data import (
    DataSpec,
    build_eval_dataset,
    dataset_targets,
    eval_transform,
    skipped_files,
)
from downstream.features.files import load_features
from downstream.linear.probe import Batch, cached_batches
from pretrain.data import build_eval_loader
from pretrain.data.loader import collate_readable
from pretrain.data.transforms import to_rgb_uint8
from pretrain.features import extract, represent

_INTERP = {"bicubic": v2.InterpolationMode.BICUBIC, "bilinear": v2.InterpolationMode.BILINEAR}


class TrainTransform:
    """DINO linear-probe augmentation on uint8 images: RandomResizedCrop(size) + horizontal flip."""

    def __init__(self, size: int, interpolation: str = "bicubic") -> None:
        self._ops = v2.Compose([
            v2.RandomResizedCrop(size, interpolation=_INTERP.get(interpolation, v2.InterpolationMode.BICUBIC),
                                 antialias=True),
            v2.RandomHorizontalFlip(),
        ])

    def __call__(self, image: Any) -> torch.Tensor:
        return self._ops(to_rgb_uint8(image))


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): ``fraction`` of every class held out (at least one when it has 2+).

    Raises:
        ValueError: fraction outside (0, 1).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}; or give val_data.root=...")
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = round(fraction * len(members))
        held.append(members[:max(n_val, 1 if len(members) > 1 else 0)])
    held_idx = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(labels)), held_idx)
    return keep, held_idx


class AugmentedSource:
    """Epochs of augmented training batches encoded on the fly by the frozen backbone.

    Args:
        model: Frozen backbone (eval mode).
        spec: The training data.
        indices: Which samples of the dataset train the heads (the rest may be validation).
        variants: Feature kinds to compute (see :data:`downstream.features.KINDS`).
        device: Where the backbone runs.
        use_bf16: bf16 autocast for the backbone.
        nonfinite: ``error`` or ``drop`` for batch rows with NaN / inf features (dropped rows
            are counted in ``dropped``, summed over epochs).
    """

    def __init__(self, model: torch.nn.Module, spec: DataSpec, indices: np.ndarray, variants: Sequence[str],
                 device: torch.device, use_bf16: bool, nonfinite: str = "error") -> None:
        size = input_size(model, spec.image_size)
        dataset = build_eval_dataset(spec, "train", transform=TrainTransform(size, spec.interpolation))
        self.dataset = Subset(dataset, indices.tolist())
        self.model, self.spec, self.variants, self.device, self.use_bf16 = model, spec, variants, device, use_bf16
        self.nonfinite, self.dropped = nonfinite, 0

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=True, generator=generator,
                            num_workers=self.spec.num_workers, pin_memory=self.device.type == "cuda",
                            collate_fn=collate_readable)  # unreadable files dropped, never replaced
        for images, labels in loader:
            if images.shape[0] == 0:
                continue
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
                feats = represent(self.model, images.to(self.device, non_blocking=True), self.variants,
                                  self.spec.mean, self.spec.std)
            feats, labels, dropped = handle_nonfinite({k: v.float() for k, v in feats.items()},
                                                      labels.to(self.device), "augmented train batch features",
                                                      self.nonfinite)
            self.dropped += dropped
            if labels.shape[0]:
                yield feats, labels


@dataclass
class ProbeData:
    """Everything the probe trains and evaluates on.

    Attributes:
        source: ``(batch_size, generator) -> iterator of ({variant: (B, D_v)}, labels (B,))``, one epoch.
        dims: Feature width per variant.
        num_classes: C.
        steps_per_epoch: Batches per epoch.
        val, test: ({variant: (N, D_v)}, labels (N,)) cached evaluation features.
        skipped: Unreadable image files left out, per set ({"train", "val", "test"}; empty for feature
            files; augmented mode: train counted in ``augmented``).
        dropped_nonfinite: Rows left out for NaN / inf features per set (``nonfinite=drop``).
        augmented: The augmented-mode source (its ``dropped`` and dataset count during training).
    """

    source: Callable[[int, torch.Generator], Iterator[Batch]]
    dims: dict[str, int]
    num_classes: int
    steps_per_epoch: int
    val: tuple[dict[str, torch.Tensor], torch.Tensor]
    test: tuple[dict[str, torch.Tensor], torch.Tensor]
    skipped: dict[str, int] = field(default_factory=dict)
    dropped_nonfinite: dict[str, int] = field(default_factory=dict)
    augmented: AugmentedSource | None = None


def default_variants(model: torch.nn.Module) -> list[str]:
    """DINO's [CLS] variants for [CLS]-pooled models; the pooled vector and patch mean otherwise (SimPool, GAP)."""
    if isinstance(model, RawPixels):
        return ["pooled"]
    if getattr(model, "num_cls", 1) and getattr(model, "pooling", "cls") == "cls":
        return ["cls", "cls_avg", "cls4", "cls4_avg"]
    return ["pooled", "avg"]


def _from_files(cfg, dropped: dict[str, int]) -> tuple[tuple, tuple, tuple]:
    """(train, val, test) from feature files. NaN / inf rows are checked per file, before the held-out split,
    so the error names the file's own rows; with ``nonfinite=drop`` they are counted in ``dropped``."""
    if not (cfg.train_features and cfg.test_features):
        raise ValueError("give both --train-features and --test-features (or neither, with a checkpoint)")

    def load(path: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, dropped[name] = handle_nonfinite(*load_features(path), f"{name} features ({path}, file rows)",
                                               cfg.nonfinite)
        return x, y

    (xtr, ytr), (xte, yte) = load(cfg.train_features, "train"), load(cfg.test_features, "test")
    if cfg.val_features:
        xval, yval = load(cfg.val_features, "val")
    else:
        dropped["val"] = 0
        keep, held = stratified_split(ytr.numpy(), cfg.val_fraction, cfg.seed)
        xtr, ytr, xval, yval = xtr[keep], ytr[keep], xtr[held], ytr[held]
    return ({"features": xtr}, ytr), ({"features": xval}, yval), ({"features": xte}, yte)


def _encode(model, dataset, spec: DataSpec, variants, device, amp, progress, desc, skipped: dict):
    transform = eval_transform(spec, input_size(model, spec.image_size))
    loader = build_eval_loader(dataset, transform, spec.batch_size, spec.num_workers, pin_memory=device.type == "cuda")
    feats, labels = extract(model, loader, variants, device, amp, spec.mean, spec.std, progress, desc)
    skipped[desc] = len(skipped_files(loader))  # train / val may share a dataset: count its own loader's
    return {k: torch.from_numpy(v) for k, v in feats.items()}, torch.from_numpy(labels)


def prepare(cfg, device: torch.device) -> ProbeData:
    """Build the probe's data from a :class:`downstream.linear.cli.LinearConfig` (entry-point helper)."""
    augmented, skipped, from_files = None, {}, {}
    ffcv = [name for name in ("train_data", "val_data", "test_data") if getattr(cfg, name).dataset == "ffcv"]
    if ffcv and not (cfg.train_features or cfg.test_features):
        raise ValueError(f"{ffcv[0]}.dataset=ffcv: the linear probe reads images from imagefolder or fashion_mnist "
                         "only; extract features from the FFCV file first (python -m downstream.features "
                         "data.dataset=ffcv data.ffcv_path=... --output train.npz) and pass --train-features / "
                         "--test-features")
    if cfg.train_features or cfg.test_features:
        if cfg.mode == "augmented":
            raise ValueError("mode=augmented needs images: give checkpoint + train_data, not feature files")
        train, val, test = _from_files(cfg, from_files)
    else:
        model = build_backbone(cfg.checkpoint, cfg.model, cfg.train_data.image_size).to(device)
        variants = list(cfg.variants) or default_variants(model)
        enc = {"model": model, "variants": variants, "device": device, "amp": cfg.amp, "progress": cfg.progress,
               "skipped": skipped}
        full = build_eval_dataset(cfg.train_data, "train")
        labels = dataset_targets(full)
        if cfg.val_data.root:
            keep = np.arange(len(labels))
            val = _encode(dataset=build_eval_dataset(cfg.val_data, "test"), spec=cfg.val_data, desc="val", **enc)
        else:
            keep, held = stratified_split(labels, cfg.val_fraction, cfg.seed)
            val = _encode(dataset=Subset(full, held.tolist()), spec=cfg.train_data, desc="val", **enc)
        if cfg.mode == "cached":
            train = _encode(dataset=Subset(full, keep.tolist()), spec=cfg.train_data, desc="train", **enc)
        else:
            use_bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
            augmented = AugmentedSource(model, cfg.train_data, keep, variants, device, use_bf16, cfg.nonfinite)
            train = ({k: v[:1] for k, v in val[0].items()}, torch.from_numpy(labels[keep]))
        test = _encode(dataset=build_eval_dataset(cfg.test_data, "test"), spec=cfg.test_data, desc="test", **enc)
    dropped = dict(from_files)  # feature files: checked on their own rows in _from_files
    named = {"val": val, "test": test} if augmented is not None else {"train": train, "val": val, "test": test}
    for name, (feats, labs) in named.items():
        if name in from_files:
            continue
        feats, labs, dropped[name] = handle_nonfinite(feats, labs, f"{name} features", cfg.nonfinite)
        named[name] = (feats, labs)
    train, val, test = named.get("train", train), named["val"], named["test"]
    n_train = int(train[1].shape[0])
    if n_train == 0 or val[1].numel() == 0 or test[1].numel() == 0:
        raise ValueError(f"no rows left to train / validate / test on ({n_train} / {val[1].numel()} / "
                         f"{test[1].numel()}): check the data and the warnings above")
    num_classes = int(max(int(train[1].max()), int(val[1].max()), int(test[1].max()))) + 1
    dims = {k: int(v.shape[1]) for k, v in train[0].items()}
    steps = -(-n_train // cfg.batch_size)
    if augmented is not None:
        return ProbeData(augmented.epoch, dims, num_classes, steps, val, test, skipped, dropped, augmented)
    return ProbeData(lambda bs, gen: cached_batches(train[0], train[1], bs, gen), dims, num_classes, steps, val, test,
                     skipped, dropped)
