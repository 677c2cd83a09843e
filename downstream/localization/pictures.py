"""Pictures of a localization run: image + attention heat map + predicted boxes (best threshold) + GT boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from downstream.localization.metrics import boxes_at_thresholds, normalize_map

__all__ = ["localization_grid", "save_grid"]

PRED_COLOUR = (255, 40, 40)  # red: predicted boxes
GT_COLOUR = (40, 255, 40)  # green: ground truth


def _draw_box(img: np.ndarray, box, colour, width: int = 1) -> None:
    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(np.rint(v)) for v in box)
    x0, x1 = np.clip([x0, x1], 0, w - 1)
    y0, y1 = np.clip([y0, y1], 0, h - 1)
    for d in range(width):
        img[min(y0 + d, h - 1), x0:x1 + 1] = colour
        img[max(y1 - d, 0), x0:x1 + 1] = colour
        img[y0:y1 + 1, min(x0 + d, w - 1)] = colour
        img[y0:y1 + 1, max(x1 - d, 0)] = colour


def _heat(norm: np.ndarray) -> np.ndarray:
    """[0, 1] map -> RGB uint8 with matplotlib's jet colour map (blue low, red high)."""
    from matplotlib import colormaps

    return (colormaps["jet"](norm)[..., :3] * 255).astype(np.uint8)


def localization_grid(images: list[np.ndarray], maps: list[np.ndarray], gt_boxes: list[np.ndarray],
                      threshold: float, columns: int = 4, alpha: float = 0.5) -> np.ndarray:
    """One RGB grid: per image two panels (the photo with boxes; the heat map overlay with boxes).

    Args:
        images: (H, W, 3) uint8 each (sizes may differ: panels are padded to the largest).
        maps: (H, W) score maps (any range), one per image.
        gt_boxes: (K, 4) inclusive boxes (green); the V2 boxes at ``threshold`` are drawn red.

    Returns:
        (rows * S, columns * 2 * S, 3) uint8.
    """
    panels = []
    for img, m, gt in zip(images, maps, gt_boxes):
        norm = normalize_map(m)
        pred = boxes_at_thresholds(norm, [threshold], multi_contour=True)[0]
        photo = img.copy()
        overlay = ((1 - alpha) * img + alpha * _heat(norm)).astype(np.uint8)
        for panel in (photo, overlay):
            for b in gt:
                _draw_box(panel, b, GT_COLOUR)
            for b in pred:
                _draw_box(panel, b, PRED_COLOUR)
        panels.append(np.concatenate([photo, overlay], axis=1))
    if not panels:
        raise ValueError("no image to draw")
    h = max(p.shape[0] for p in panels)  # images at their own sizes (LOST's geometry): pad with black
    w = max(p.shape[1] for p in panels)
    panels = [np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1]), (0, 0))) for p in panels]
    blank = np.zeros_like(panels[0])
    rows = [panels[i:i + columns] for i in range(0, len(panels), columns)]
    rows[-1] += [blank] * (columns - len(rows[-1])) if len(rows) > 1 else []
    return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def save_grid(grid: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write the grid as PNG (nearest-neighbour upscaled by ``scale`` so small images stay readable)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    Image.fromarray(grid).save(path)
    return path
