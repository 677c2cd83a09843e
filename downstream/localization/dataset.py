"""Localization images resized to S x S (wsolevaluation's protocol), with boxes and masks in that frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from downstream.localization.parsers import LocRecord

__all__ = ["LocDataset", "LocSample", "collate", "resize_boxes"]


def resize_boxes(boxes: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """Inclusive boxes (K, 4) from an image of size (W, H) to (W', H'), truncating as wsolevaluation does."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sx, sy = new_size[0] / size[0], new_size[1] / size[1]
    out = (b * np.array([sx, sy, sx, sy])).astype(np.int64)
    return np.minimum(out, [new_size[0] - 1, new_size[1] - 1] * 2)


@dataclass
class LocSample:
    image: torch.Tensor  # uint8 (3, S, S)
    boxes: np.ndarray  # (K, 4) int, inclusive, S x S frame
    mask: np.ndarray | None  # uint8 (S, S): 1 object, 0 background, 255 ignore
    name: str
    label: int


class LocDataset(Dataset):
    """Records -> :class:`LocSample` at ``image_size`` (bilinear image resize, nearest masks)."""

    def __init__(self, records: list[LocRecord], image_size: int) -> None:
        self.records, self.size = records, int(image_size)

    def __len__(self) -> int:
        return len(self.records)

    def _mask(self, rec: LocRecord) -> np.ndarray | None:
        if not rec.masks:
            return None
        s = (self.size, self.size)
        fg, ignore = np.zeros(s, bool), np.zeros(s, bool)
        for path in rec.masks:
            m = np.array(Image.open(path).resize(s, Image.NEAREST))
            if m.ndim == 3:
                m = m[..., 0]
            if rec.voc_masks:
                ignore |= m == 255  # VOC instance PNGs mark object borders 255
                fg |= (m > 0) & (m != 255)
            else:
                fg |= m > 0  # wsolevaluation: binary masks
        if rec.ignore is not None:
            ignore |= np.array(Image.open(rec.ignore).convert("L").resize(s, Image.NEAREST)) > 127
        out = fg.astype(np.uint8)
        out[ignore & ~fg] = 255
        return out

    def __getitem__(self, i: int) -> LocSample:
        rec = self.records[i]
        with Image.open(rec.image) as im:
            if im.size != tuple(rec.size):
                raise ValueError(f"{rec.image} is {im.size[0]}x{im.size[1]} but its annotation says "
                                 f"{rec.size[0]}x{rec.size[1]}: fix image_sizes.txt / the annotation")
            img = np.array(im.convert("RGB").resize((self.size, self.size), Image.BILINEAR))
        boxes = resize_boxes(rec.boxes, rec.size, (self.size, self.size))
        return LocSample(torch.from_numpy(img).permute(2, 0, 1).contiguous(), boxes, self._mask(rec),
                         str(rec.image), rec.label)


def collate(samples: list[LocSample]) -> tuple[torch.Tensor, list[LocSample]]:
    """Batch the images (B, 3, S, S) uint8; keep the per-image annotations as a list."""
    return torch.stack([s.image for s in samples]), samples
