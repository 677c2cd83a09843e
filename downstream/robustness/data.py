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

from pretrain.data.datasets import ImageFolderDataset
from pretrain.data.loader import collate_readable

__all__ = ["IMAGE_SUFFIXES", "ImageFolderU8", "folder_loader", "load_in_to_in9", "map_to_in9"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # compared in lower case (".JPEG" too)


class _ResizeU8:
    """PIL image -> uint8 (3, S, S), RGB, resized bilinear (picklable for loader workers)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        arr = np.array(image.convert("RGB").resize((self.size, self.size), Image.BILINEAR))
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class ImageFolderU8(Dataset):
    """``root/<class>/<image>`` -> (uint8 (3, S, S) resized bilinear, class index); classes sorted by name.

    Nothing is dropped silently: with ``classes`` given (those of ``original/val``), a class folder that
    is missing, empty (no image) or not one of them is an error naming the folder, since its images
    would otherwise be left out of (or mislabelled in) the accuracy. An image that does not decode is
    left out, warned about once and counted (:attr:`skipped_paths`): the item is None and
    `pretrain.data.loader.collate_readable` drops it, as in every evaluator.

    Raises:
        FileNotFoundError: ``root`` missing; a class folder missing, empty or unexpected.
    """

    def __init__(self, root: str | Path, image_size: int, classes: list[str] | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} not found: build the benchmark with "
                                    "python -m downstream.localization.synth, or point data.root at the challenge")
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes is not None:
            missing = [c for c in classes if c not in found]
            extra = [c for c in found if c not in classes]
            if missing:
                raise FileNotFoundError(
                    f"class folder {root / missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if
                                                                       len(missing) > 1 else "")
                    + f": every set needs the {len(classes)} classes of original/val ({', '.join(classes)}), or its "
                    "accuracy would silently leave that class out; restore the folder")
            if extra:
                raise FileNotFoundError(f"class folder {root / extra[0]} is not a class of original/val "
                                        f"({', '.join(classes)}): remove it, or add the class to every variant")
        self.folder = ImageFolderDataset(root, transform=_ResizeU8(image_size), extensions=IMAGE_SUFFIXES,
                                         skip_unreadable=True)  # an empty class folder is an error naming it
        self.classes = self.folder.classes
        self.samples = self.folder.samples
        self.size = int(image_size)

    @property
    def skipped_paths(self) -> list[str]:
        """Files that did not decode so far (any loader worker), in dataset order."""
        return self.folder.skipped_paths

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        return self.folder[i]


def folder_loader(root: str | Path, image_size: int, batch_size: int, num_workers: int,
                  classes: list[str] | None = None) -> DataLoader:
    """Ordered loader of (uint8 (B, 3, S, S), int64 (B,)) over an image folder tree, unreadable files left out."""
    return DataLoader(ImageFolderU8(root, image_size, classes), batch_size=batch_size, num_workers=num_workers,
                      collate_fn=collate_readable)


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
