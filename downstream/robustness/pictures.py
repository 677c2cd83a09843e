"""A row of the background variants of one validation image, each captioned with the predicted class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["variant_row"]


def variant_row(root: Path, variants: list[str], classes: list[str], predictions: dict[str, int], path: Path,
                size: int, panel: int = 160) -> Path:
    """Save a PNG: the first image of the first class for every variant, with "variant: predicted class".

    Green caption = correct (the true class is ``classes[0]``), red = wrong.
    """
    tiles = []
    for v in variants:
        files = sorted((root / v / "val" / classes[0]).iterdir())
        with Image.open(files[0]) as im:
            tile = im.convert("RGB").resize((panel, panel), Image.NEAREST)
        canvas = Image.new("RGB", (panel, panel + 28), (255, 255, 255))
        canvas.paste(tile, (0, 28))
        pred = predictions[v]
        name = classes[pred] if 0 <= pred < len(classes) else "none"
        ImageDraw.Draw(canvas).text((3, 2), f"{v}\n-> {name}", fill=(0, 140, 0) if pred == 0 else (200, 0, 0))
        tiles.append(np.array(canvas))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)
    return path
