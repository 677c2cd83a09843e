"""Ground-truth masks for PxAP: read, resized and thresholded as wsolevaluation does, and checked.

wsolevaluation (Choe et al., CVPR 2020; ``evaluation.py``: ``load_mask_image`` / ``get_mask``)
reads each mask file as a grey image, resizes it to the score map's size with OpenCV's
nearest-neighbour rule (``INTER_NEAREST``) and calls a pixel on where its value is > 0.5: for
8-bit files any non-zero value, for float files (values in [0, 1]) the upper half. The ignore
mask is the ignore file's on-pixels minus the object pixels. The combined mask is uint8 (H, W):
1 object, 0 background, 255 ignore (the ``--masks`` format, :func:`check_mask_values`).

OpenCV's nearest rule (``resizeNN`` in ``imgproc/src/resize.cpp``) samples source index
``min(floor(i / (n_dst / n_src)), n_src - 1)`` for output index ``i``: the *top-left* source
pixel, not the centre one that PIL's ``NEAREST`` takes, so the two differ by one pixel on many
rows and columns. :func:`resize_nearest` restates that rule in numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MASK_VALUES", "check_mask_values", "combine_masks", "read_grey", "resize_nearest", "source_index"]

MASK_VALUES = (0, 1, 255)  # background, object, ignore
_FLOAT_MODES = ("F", "I", "I;16", "I;16B", "I;16L", "I;16N")


def source_index(n_dst: int, n_src: int) -> np.ndarray:
    """OpenCV INTER_NEAREST: the source row / column (int64 (n_dst,)) each output row / column copies.

    The scale is formed as OpenCV forms it (``1 / (n_dst / n_src)`` in double precision), so
    products that land on a whole number floor the same way.
    """
    inv = 1.0 / (float(n_dst) / float(n_src))
    return np.minimum(np.floor(np.arange(n_dst) * inv).astype(np.int64), n_src - 1)


def resize_nearest(array: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array (H, W) to ``hw`` = (H', W') with OpenCV's index rule."""
    a = np.asarray(array)
    if a.shape[:2] == tuple(hw):
        return a
    return a[source_index(hw[0], a.shape[0])][:, source_index(hw[1], a.shape[1])]


def read_grey(path: str | Path, palette_indices: bool = False) -> np.ndarray:
    """A mask file as float32 (H, W): grey values as stored (8-bit 0..255, or the float / 16-bit values).

    Colour files become grey by luma (as OpenCV's IMREAD_GRAYSCALE); with ``palette_indices``
    a palette PNG gives its indices (VOC instance masks: object ids, 255 = border).
    """
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in _FLOAT_MODES or (palette_indices and im.mode == "P"):
            return np.asarray(im, dtype=np.float32)
        return np.asarray(im.convert("L"), dtype=np.float32)


def combine_masks(objects: list[np.ndarray], ignore: np.ndarray | None) -> np.ndarray:
    """wsolevaluation's ``get_mask``: uint8 (H, W) with 1 where any object mask is > 0.5, 255 where
    the ignore mask is > 0.5 and no object is, 0 elsewhere. Inputs are grey values, already resized."""
    fg = np.zeros(objects[0].shape, dtype=bool)
    for m in objects:
        fg |= m > 0.5
    out = fg.astype(np.uint8)
    if ignore is not None:
        out[(ignore > 0.5) & ~fg] = 255
    return out


def check_mask_values(mask: np.ndarray, name: str) -> np.ndarray:
    """A mask (H, W) in the ``--masks`` format, as uint8; raises naming ``name`` and the bad value.

    Raises:
        ValueError: A value outside {0, 1, 255} (e.g. 0.5, 2, 128, NaN).
    """
    m = np.asarray(mask)
    bad = ~np.isin(m, MASK_VALUES)
    if bad.any():
        value = m[bad].flat[0].item()
        raise ValueError(f"{name}: mask value {value} is not 0 (background), 1 (object) or 255 (ignore); "
                         "binarise the mask first (e.g. (mask > 0.5).astype(np.uint8))")
    return m.astype(np.uint8)
