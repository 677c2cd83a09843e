"""Backgrounds Challenge folders (Xiao et al., ICLR 2021) and the ImageNet -> ImageNet-9 class mapping.

Layout: ``<root>/<variant>/val/<class>/*`` for the variants (original, only_fg, no_fg, only_bg_b,
only_bg_t, mixed_same, mixed_rand, mixed_next), training images in ``<root>/original/train/<class>/*``
(ours; the real challenge trains on ImageNet / IN-9L). Classes are the sorted folder names.
``in_to_in9.json`` maps ImageNet-1k class ids (strings "0".."999") to IN-9 ids 0..8 or -1 (the
630 classes outside IN-9: a prediction there is always wrong), as in MadryLab's
``backgrounds_challenge`` and AttMask's evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

__all__ = ["IMAGE_SUFFIXES", "ImageFolderU8", "folder_loader", "load_in_to_in9", "map_to_in9"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".JPEG", ".bmp")


class ImageFolderU8(Dataset):
    """``root/<class>/<image>`` -> (uint8 (3, S, S) resized bilinear, class index); classes sorted by name."""

    def __init__(self, root: str | Path, image_size: int, classes: list[str] | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} not found: build the benchmark with "
                                    "python -m downstream.localization.synth, or point data.root at the challenge")
        self.classes = classes or sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [(p, c) for c, name in enumerate(self.classes) if (root / name).is_dir()
                        for p in sorted((root / name).iterdir()) if p.suffix in IMAGE_SUFFIXES]
        if not self.samples:
            raise ValueError(f"no image under {root}/<class>/ (suffixes {IMAGE_SUFFIXES})")
        self.size = int(image_size)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        with Image.open(path) as im:
            arr = np.array(im.convert("RGB").resize((self.size, self.size), Image.BILINEAR))
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), label


def folder_loader(root: str | Path, image_size: int, batch_size: int, num_workers: int,
                  classes: list[str] | None = None) -> DataLoader:
    """Ordered loader of (uint8 (B, 3, S, S), int64 (B,)) over an image folder tree."""
    return DataLoader(ImageFolderU8(root, image_size, classes), batch_size=batch_size, num_workers=num_workers)


def load_in_to_in9(path: str | Path) -> np.ndarray:
    """(1000,) int64: IN-9 class of each ImageNet class, -1 for none."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"class mapping {p} not found (MadryLab backgrounds_challenge in_to_in9.json)")
    data = json.loads(p.read_text())
    table = np.full(1000, -1, dtype=np.int64)
    for k, v in data.items():
        if not 0 <= int(k) < 1000 or not -1 <= int(v) < 9:
            raise ValueError(f"{p}: entry {k!r}: {v!r} is not an ImageNet id -> IN-9 id (or -1)")
        table[int(k)] = int(v)
    return table


def map_to_in9(logits_1k: torch.Tensor, table: np.ndarray) -> torch.Tensor:
    """Top-1 ImageNet prediction (B, 1000) -> IN-9 class (B,), -1 when the class is outside IN-9."""
    return torch.as_tensor(table, device=logits_1k.device)[logits_1k.argmax(-1)]
