"""Localization images with boxes and masks in the frame the evaluator sees, in one of two geometries.

* ``square`` (wsolevaluation's protocol): the image is resized to S x S (bilinear); boxes are
  rescaled with truncation (``resize_boxes``) and masks resized with OpenCV's nearest rule.
* ``pad`` (LOST's protocol): the image keeps its own size; boxes and masks stay in its frame;
  the evaluator pads it to a multiple of the patch size after normalising
  (:mod:`downstream.localization.padding`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from downstream.localization.masks import combine_masks, read_grey, resize_nearest
from downstream.localization.parsers import LocRecord

__all__ = ["GEOMETRIES", "LocDataset", "LocSample", "collate", "resize_boxes"]

GEOMETRIES = ("square", "pad")


def resize_boxes(boxes: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """Inclusive boxes (K, 4) from an image of size (W, H) to (W', H'), truncating as wsolevaluation does."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sx, sy = new_size[0] / size[0], new_size[1] / size[1]
    out = (b * np.array([sx, sy, sx, sy])).astype(np.int64)
    return np.minimum(out, [new_size[0] - 1, new_size[1] - 1] * 2)


@dataclass
class LocSample:
    image: torch.Tensor  # uint8 (3, H, W): S x S (square) or the image's own size (pad)
    boxes: np.ndarray  # (K, 4) int, inclusive, in the image tensor's frame
    mask: np.ndarray | None  # uint8 (H, W): 1 object, 0 background, 255 ignore
    name: str
    label: int

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W) of the image (before any padding)."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])


class LocDataset(Dataset):
    """Records -> :class:`LocSample`.

    Args:
        records: parsed images.
        image_size: S of the ``square`` geometry (unused by ``pad``).
        geometry: ``square`` (resize to S x S) or ``pad`` (own size), see the module docstring.
    """

    def __init__(self, records: list[LocRecord], image_size: int, geometry: str = "square") -> None:
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry {geometry!r}: choose one of {', '.join(GEOMETRIES)}")
        self.records, self.size, self.geometry = records, int(image_size), geometry

    def __len__(self) -> int:
        return len(self.records)

    def _mask(self, rec: LocRecord, hw: tuple[int, int]) -> np.ndarray | None:
        if not rec.masks:
            return None
        if rec.voc_masks:  # VOC instance PNGs: object ids, 255 = the (ignored) object borders
            fg, ignore = np.zeros(hw, bool), np.zeros(hw, bool)
            for path in rec.masks:
                m = resize_nearest(read_grey(path, palette_indices=True), hw)
                ignore |= m == 255
                fg |= (m > 0) & (m != 255)
            out = fg.astype(np.uint8)
            out[ignore & ~fg] = 255
            return out
        objects = [resize_nearest(read_grey(p), hw) for p in rec.masks]
        ignore = resize_nearest(read_grey(rec.ignore), hw) if rec.ignore is not None else None
        return combine_masks(objects, ignore)

    def __getitem__(self, i: int) -> LocSample:
        rec = self.records[i]
        with Image.open(rec.image) as im:
            if im.size != tuple(rec.size):
                raise ValueError(f"{rec.image} is {im.size[0]}x{im.size[1]} but its annotation says "
                                 f"{rec.size[0]}x{rec.size[1]}: fix image_sizes.txt / the annotation")
            rgb = im.convert("RGB")
            if self.geometry == "square":
                rgb = rgb.resize((self.size, self.size), Image.BILINEAR)
            img = np.array(rgb)
        hw = img.shape[:2]
        boxes = rec.boxes if self.geometry == "pad" else resize_boxes(rec.boxes, rec.size, (hw[1], hw[0]))
        return LocSample(torch.from_numpy(img).permute(2, 0, 1).contiguous(), np.asarray(boxes, dtype=np.int64),
                         self._mask(rec, hw), str(rec.image), rec.label)


def collate(samples: list[LocSample]) -> tuple[torch.Tensor, list[LocSample]]:
    """Batch the images (B, 3, H, W) uint8, zero-padded at the right / bottom to the largest of the batch
    (:func:`~downstream.localization.padding.pad_normalised` redoes the padding after normalisation);
    the per-image annotations stay a list."""
    h = max(s.image.shape[-2] for s in samples)
    w = max(s.image.shape[-1] for s in samples)
    out = torch.zeros(len(samples), 3, h, w, dtype=torch.uint8)
    for i, s in enumerate(samples):
        out[i, :, : s.image.shape[-2], : s.image.shape[-1]] = s.image
    return out, samples
