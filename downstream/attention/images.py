"""Photos for the attention pictures: found in a folder, read, resized to the patch grid, normalised."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pretrain.data.datasets import IMG_EXTENSIONS

log = logging.getLogger(__name__)

__all__ = ["find_images", "load_image"]


def find_images(path: str | Path) -> list[Path]:
    """One image file, or the image files of a folder (sorted; sub-folders too).

    Raises:
        FileNotFoundError: if ``path`` does not exist or a folder holds no image file.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"images not found: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no image file ({', '.join(IMG_EXTENSIONS)}) in {path}")
    return files


def load_image(path: Path, short_side: int, patch_size: int, mean: Sequence[float],
               std: Sequence[float]) -> tuple[np.ndarray, torch.Tensor] | None:
    """Read an image at its aspect ratio, the shorter side ~``short_side``, both sides multiples of the patch.

    Returns:
        (photo (H, W, 3) uint8, normalised (1, 3, H, W) float32), or None (logged) if unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = short_side / min(img.size)
            w, h = (max(patch_size, round(s * scale / patch_size) * patch_size) for s in img.size)
            photo = np.asarray(img.resize((w, h), Image.Resampling.BICUBIC))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        log.warning("skipping unreadable image %s (%s)", path, exc)
        return None
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1).float().div(255.0)  # PIL arrays are read-only
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return photo, x.unsqueeze(0)
