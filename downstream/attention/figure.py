"""The attention picture of one image (and a grid of several): titled tiles drawn with numpy and PIL.

Row 1: the photo, then each head's map (or SimPool's) as a heat overlay; row 2: the patches
holding 60% of each map's mass (the rest dimmed); row 3: the patches each masking strategy
hides (grey).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from downstream.attention.image_maps import ImageMaps
from downstream.localization.maps import upsample
from downstream.localization.metrics import normalize_map

__all__ = ["attention_figure", "figure_grid", "save_png"]

TITLE_PX = 14
_HIDDEN_GREY = 128


def _titled(tile: np.ndarray, title: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (tile.shape[1], TITLE_PX), (255, 255, 255))
    ImageDraw.Draw(strip).text((2, 1), title, fill=(0, 0, 0))
    return np.concatenate([np.asarray(strip), tile], axis=0)


def _cells(mask, shape: tuple[int, int]) -> np.ndarray:
    """(gh, gw) bool -> (H, W) bool, each patch a block of pixels."""
    m = np.asarray(mask, dtype=bool)
    return m.repeat(shape[0] // m.shape[0], 0).repeat(shape[1] // m.shape[1], 1)


def _heat(photo: np.ndarray, grid_map) -> np.ndarray:
    from matplotlib import colormaps

    smooth = upsample(grid_map[None], photo.shape[:2])[0].numpy()
    colour = colormaps["inferno"](normalize_map(smooth))[..., :3] * 255
    return (0.4 * photo + 0.6 * colour).astype(np.uint8)


def attention_figure(m: ImageMaps, ratio: float, mass: float = 0.6) -> np.ndarray:
    """(rows * (TITLE_PX + H), columns * W, 3) uint8 picture of :class:`ImageMaps`."""
    photo, shape = m.photo, m.photo.shape[:2]
    label = "SimPool" if m.source == "simpool" else "head {}"
    top = [_titled(photo, "image")] + [_titled(_heat(photo, g), label.format(i)) for i, g in enumerate(m.maps)]
    kept = [_titled(np.where(_cells(k, shape)[..., None], photo, photo // 4), f"{int(mass * 100)}% mass")
            for k in m.kept]
    hidden = [_titled(np.where(_cells(h, shape)[..., None], _HIDDEN_GREY, photo).astype(np.uint8),
                      f"{name} {ratio:.0%}") for name, h in m.hidden.items()]
    blank = np.full_like(top[0], 255)
    columns = max(len(top), len(hidden))
    rows = [top, [blank] + kept, hidden]
    return np.concatenate([np.concatenate(r + [blank] * (columns - len(r)), axis=1) for r in rows], axis=0)


def figure_grid(figures: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Stack pictures of different sizes vertically on white, left-aligned."""
    if not figures:
        raise ValueError("no picture to put in a grid")
    width = max(f.shape[1] for f in figures)
    parts = []
    for f in figures:
        parts += [np.pad(f, ((0, gap), (0, width - f.shape[1]), (0, 0)), constant_values=255)]
    return np.concatenate(parts, axis=0)[:-gap]


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 picture as PNG (folders created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path, optimize=True)
    return path
