"""A PNG of segmentation results: one row per image - the image, the truth, the prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from downstream.segmentation.data import IGNORE


def palette(num_classes: int) -> np.ndarray:
    """(256, 3) uint8 colours: PASCAL VOC's bit-interleaved palette; 255 (ignore) white."""
    colours = np.zeros((256, 3), np.uint8)
    for c in range(256):
        r = g = b = 0
        v = c
        for shift in range(7, -1, -1):
            r |= (v & 1) << shift
            g |= ((v >> 1) & 1) << shift
            b |= ((v >> 2) & 1) << shift
            v >>= 3
        colours[c] = (r, g, b)
    colours[IGNORE] = 255
    return colours


def results_picture(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path,
                    num_classes: int, side: int = 128) -> Path:
    """Write rows of (RGB image (H, W, 3), truth (H, W), prediction (H, W)) side by side, each ``side`` px."""
    colours = palette(num_classes)
    tiles = []
    for image, truth, pred in rows:
        cells = [Image.fromarray(image), Image.fromarray(colours[truth]), Image.fromarray(colours[pred])]
        tiles.append(np.concatenate([np.asarray(c.resize((side, side), Image.NEAREST)) for c in cells], axis=1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)
    return path
