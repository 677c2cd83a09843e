"""Frozen-backbone features of labelled image batches: the vectors every k-NN / linear evaluation uses.

Shared by the downstream evaluators (:mod:`downstream.features`, k-NN, linear probe) and the
online k-NN check of pretraining, so both measure the same vectors.

Feature kinds (D = embedding width):
    ``pooled``   the model's pooled vector ([CLS], mean of patches, or SimPool), (N, D)
    ``cls``      [CLS] of the last block, (N, D)
    ``avg``      mean of the last block's patch tokens, (N, D)
    ``cls_avg``  [CLS] and patch mean concatenated, (N, 2D)      (DINO linear, avgpool)
    ``cls4``     [CLS] of the last 4 blocks concatenated, (N, 4D) (DINO linear, ViT-S)
    ``cls4_avg`` ``cls4`` and the last block's patch mean, (N, 5D)
    ``grid2``    the last block's patch tokens mean-pooled on a 2x2 grid, concatenated, (N, 4D)
    ``patches``  all of the last block's patch tokens concatenated in grid order, (N, N_p * D)

``grid2`` and ``patches`` keep the image layout, as a k-NN on raw pixels does. On small, centred
images (Fashion-MNIST) an untrained ViT read out this way already matches the pixels, so the
pooled kinds are the ones that show what pretraining learned
(benchmarks/fmnist_study/results/README.md).

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), 2021:
k-NN on the [CLS] feature; linear probe on [CLS] of the last 4 blocks (+ average pool).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize_on_device

KINDS: tuple[str, ...] = ("pooled", "cls", "avg", "cls_avg", "cls4", "cls4_avg", "grid2", "patches")
_AMP: dict[str, torch.dtype | None] = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "none": None}


def represent(model: nn.Module, images: torch.Tensor, kinds: Sequence[str],
              mean: Sequence[float], std: Sequence[float]) -> dict[str, torch.Tensor]:
    """Feature vectors of a uint8 image batch (B, 3, H, W) for each requested kind -> {kind: (B, D_kind)}.

    A model with ``takes_uint8 = True`` (the raw-pixel baseline) gets the uint8 batch and its
    output serves every kind; any other model gets the batch normalised with ``mean``/``std``.

    Raises:
        ValueError: A [CLS] kind for a model without [CLS] (SimPool).
    """
    if getattr(model, "takes_uint8", False):
        flat = model(images)
        return {kind: flat for kind in kinds}
    x = normalize_on_device(images, tuple(mean), tuple(std))
    out: dict[str, torch.Tensor] = {}
    if "pooled" in kinds:
        out["pooled"] = model.forward_features(x).pooled
    token_kinds = [k for k in kinds if k != "pooled"]
    if not token_kinds:
        return out
    if any(k.startswith("cls") for k in token_kinds) and getattr(model, "num_cls", 1) == 0:
        raise ValueError(f"feature kinds {token_kinds} need a [CLS] token but this model has none "
                         "(pooling=simpool): use kind=pooled or kind=avg")
    n_blocks = 4 if any(k.startswith("cls4") for k in token_kinds) else 1
    layers = model.get_intermediate_layers(x, n=n_blocks)
    p = model.num_prefix_tokens
    tokens = layers[-1][:, p:]
    avg = tokens.mean(dim=1)
    cls_last, cls_all = layers[-1][:, 0], [t[:, 0] for t in layers]
    table = {"cls": lambda: cls_last, "avg": lambda: avg, "cls_avg": lambda: torch.cat([cls_last, avg], 1),
             "cls4": lambda: torch.cat(cls_all, 1), "cls4_avg": lambda: torch.cat([*cls_all, avg], 1),
             "grid2": lambda: _grid_pool(tokens, x.shape[-2:], 2), "patches": lambda: tokens.flatten(1)}
    out.update({k: table[k]() for k in token_kinds})
    return out


def _grid_pool(tokens: torch.Tensor, image_hw: torch.Size, cells: int) -> torch.Tensor:
    """Patch tokens (B, N, D) of an image of side (H, W) mean-pooled on a cells x cells grid -> (B, cells^2 * D)."""
    b, n, d = tokens.shape
    h = round((n * image_hw[0] / image_hw[1]) ** 0.5)  # patch rows: N = rows * cols, rows / cols = H / W
    if h * (n // max(h, 1)) != n or h < cells or n // h < cells:
        raise ValueError(f"kind grid2 needs a patch grid of at least {cells}x{cells}, got {n} patches")
    grid = tokens.transpose(1, 2).reshape(b, d, h, n // h)
    return torch.nn.functional.adaptive_avg_pool2d(grid, cells).flatten(1)


def _autocast_dtype(kinds: Sequence[str], amp: str, device: torch.device) -> torch.dtype | None:
    """The forward's autocast dtype (None: float32) after checking ``kinds`` and ``amp``."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; choose one of {', '.join(KINDS)}")
    if amp not in _AMP:
        raise ValueError(f"amp={amp!r}: choose one of {', '.join(_AMP)}")
    return _AMP["bf16" if amp == "auto" and device.type == "cuda" else amp]


@torch.no_grad()
def extract(model: nn.Module, loader: Iterable, kinds: Sequence[str] = ("pooled",),
            device: str | torch.device = "cpu", amp: str = "auto", mean: Sequence[float] = IMAGENET_MEAN,
            std: Sequence[float] = IMAGENET_STD, progress: bool = True,
            desc: str = "features") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run the frozen model over a loader of (uint8 (B, 3, H, W), int64 (B,)) batches.

    Empty batches (every file of the batch unreadable, see
    `pretrain.data.loader.collate_readable`) are skipped, so rows are exactly the images the
    loader delivered, each with its own label.

    Args:
        model: Frozen backbone (moved to ``device``).
        loader: Batches in a fixed order; ``len(loader.dataset)``, when present, sizes the output once.
        kinds: Feature kinds, see :data:`KINDS`.
        device: Where the model runs.
        amp: ``auto`` (bf16 on CUDA, none elsewhere), ``bf16``, ``fp16`` or ``none``: the autocast
            of the forward; features are returned as float32 whatever it is.
        mean, std: Normalisation of the 0..255 images (per channel, 0..1 scale).
        progress: Show a tqdm bar.
        desc: The bar's label.

    Returns:
        ({kind: float32 (N, D_kind)}, labels int64 (N,)), in loader order.

    Raises:
        ValueError: Unknown kind, or nothing extracted.
    """
    device = torch.device(device)
    dtype = _autocast_dtype(kinds, amp, device)
    model = model.to(device)
    # Rows are written into arrays sized from the dataset length when it is known, so the
    # features are held once (no list of batches + concatenated copy at the end).
    total = len(loader.dataset) if hasattr(loader, "dataset") else None
    out: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    labels: list[np.ndarray] = []
    filled = 0
    for images, targets in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        n = images.shape[0]
        if n == 0:
            continue
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            feats = represent(model, images, kinds, mean, std)
        for k, v in feats.items():
            v = v.float().cpu().numpy()
            if total is None:
                out[k].append(v)
                continue
            if not out[k]:
                out[k].append(np.empty((total, v.shape[1]), dtype=np.float32))
            out[k][0][filled:filled + n] = v
        labels.append(np.asarray(targets, dtype=np.int64))
        filled += n
    if not labels:
        raise ValueError("no image could be read: no features extracted (see the warnings above for the files)")
    if total is not None:
        return {k: v[0][:filled] for k, v in out.items()}, np.concatenate(labels)
    return {k: np.concatenate(v) for k, v in out.items()}, np.concatenate(labels)
