"""Backbone patch tokens for the pose head: on the fly (fine-tuning) or cached once (frozen backbone)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from pretrain.data.transforms import normalize_on_device

log = logging.getLogger(__name__)


def patch_tokens(backbone: nn.Module, images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images (B, C, H, W) on the backbone's device -> (B, N, D) patch tokens after the final norm."""
    x = normalize_on_device(images, tuple(mean), tuple(std))
    return backbone.forward_features(x).patch_tokens


def in_channels(backbone: nn.Module) -> int:
    """Input channels of our ViT (3 unless it was built for gray images)."""
    proj = getattr(getattr(backbone, "patch_embed", None), "proj", None)
    return int(getattr(proj, "in_channels", 3))


@torch.no_grad()
def cache_tokens(backbone: nn.Module, dataset: Dataset, batch_size: int, device: torch.device,
                 mean: Sequence[float], std: Sequence[float], workers: int = 0, progress: bool = True,
                 desc: str = "tokens") -> TensorDataset:
    """Run the frozen backbone once over ``dataset`` of (image, xyz, quat, scene).

    Returns:
        TensorDataset of (tokens (M, N, D) float32 on the CPU, xyz (M, 3), quat (M, 4), scene (M,)).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    for images, xyz, quat, scene in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        parts[0].append(patch_tokens(backbone, images.to(device), mean, std).float().cpu())
        parts[1].append(xyz)
        parts[2].append(quat)
        parts[3].append(torch.as_tensor(scene))
    out = TensorDataset(*[torch.cat(p) for p in parts])
    log.info("cached %s: %s", desc, tuple(out.tensors[0].shape))
    return out
