"""The files of the ``--maps`` mode, loaded and checked: ``maps.npz``, ``boxes.json``, ``masks.npz``.

Formats (docs/localization.md, "Score your own maps"): ``maps.npz`` holds ``maps`` float
(N, H, W); ``boxes.json`` is ``{"boxes": [[[x0, y0, x1, y1], ...], ...]}`` with one list per
image (inclusive pixels in the map frame); ``masks.npz`` holds ``masks`` uint8 (N, H, W) with
1 object, 0 background, 255 ignore. Every problem is one ``ValueError`` / ``FileNotFoundError``
line naming the file, the image (index) or key, the bad value and the fix.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from downstream.localization.masks import MASK_VALUES

__all__ = ["load_boxes", "load_maps", "load_masks"]

_BOXES_FORMAT = '{"boxes": [[[x0, y0, x1, y1], ...], ...]} with one list per image'


def _file(path: str, what: str, flag: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file {p} not found (give {flag} FILE)")
    return p


def _npz(path: str, key: str, flag: str) -> np.ndarray:
    p = _file(path, key, flag)
    try:
        with np.load(p) as data:
            found = list(data.files)
            array = data[key] if key in found else None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:  # not an .npz, truncated, pickled
        raise ValueError(f"{p}: not a readable .npz file ({exc}); write it with np.savez(path, {key}=...)") from None
    if array is None:
        raise ValueError(f"{p} has no array {key!r} (found {found}): save it with np.savez(path, {key}=...)")
    return array


def load_maps(path: str) -> np.ndarray:
    """``maps`` (N, H, W) of a ``.npz`` (values are checked per image when scored)."""
    arr = _npz(path, "maps", "--maps")
    if arr.ndim != 3:
        raise ValueError(f"{path}: maps must be (N, H, W), got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{path}: maps have dtype {arr.dtype}; give float score maps")
    return arr


def _box_list(item, where: str) -> np.ndarray:
    if not isinstance(item, list) or (item and not isinstance(item[0], list)):
        raise ValueError(f"{where} is {json.dumps(item)[:60]}: each image needs a list of boxes [[x0, y0, x1, y1], ...]")
    for box in item:
        if len(box) != 4:
            raise ValueError(f"{where}: box {box} has {len(box)} numbers, need 4 (x0, y0, x1, y1)")
        for v in box:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{where}: box {box} holds {v!r}; coordinates must be finite numbers")
    return np.asarray(item, dtype=np.float64).reshape(-1, 4)


def load_boxes(path: str, n: int) -> list[np.ndarray]:
    """One (K, 4) float array per image from ``boxes.json``; ``n`` = the number of maps."""
    p = _file(path, "boxes", "--boxes")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON ({exc}); the file must be {_BOXES_FORMAT}") from None
    if not isinstance(data, dict) or "boxes" not in data or not isinstance(data["boxes"], list):
        raise ValueError(f"{p} must be {_BOXES_FORMAT}")
    if len(data["boxes"]) != n:
        raise ValueError(f"{p} has {len(data['boxes'])} box lists but the maps file has {n} maps")
    return [_box_list(b, f"{p} image {i}") for i, b in enumerate(data["boxes"])]


def load_masks(path: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    """``masks`` (N, H, W) of a ``.npz`` as uint8, one per image; ``shape`` = the maps' shape."""
    arr = _npz(path, "masks", "--masks")
    if arr.shape != tuple(shape):
        raise ValueError(f"{path}: masks {arr.shape} must match maps {tuple(shape)}")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{path}: masks are {arr.dtype}; masks must be uint8 with 1 = object, 0 = background, "
                         "255 = ignore (a 0/1 float mask: mask.astype(np.uint8); a probability map: "
                         "(mask > 0.5).astype(np.uint8))")
    bad = ~np.isin(arr, MASK_VALUES)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{path} image {i}: mask value {arr[i][bad[i]].flat[0].item()} is not 0 (background), 1 (object) "
                         "or 255 (ignore)")
    if arr.size and not (arr == 1).any() and (arr == 255).any():
        raise ValueError(f"{path}: the masks hold only 0 and 255, no 1: here 255 means 'ignore', so no pixel would be "
                         "an object; a 0/255 binary mask must be divided by 255 first")
    return list(arr.astype(np.uint8))
