"""A small VOC-layout segmentation set with exact masks: Fashion-MNIST items on real photos and textures.

Each image is a crop of a background photo (scikit-image / scikit-learn / matplotlib, as
:func:`downstream.localization.synth.load_backgrounds` gives them) with 1-2 Fashion-MNIST items
pasted at random places; an item's mask is its upscaled pixels above 40 / 255 (the same threshold
as the localization benchmark), so the labels are exact by construction. Classes: 0 background,
1..10 the Fashion-MNIST classes (``label + 1``); a one-pixel ring around every item is 255
(ignore), as VOC marks object borders. Written: ``JPEGImages/<id>.jpg`` (quality 95),
``SegmentationClass/<id>.png`` (palette PNG), ``ImageSets/Segmentation/{train,val}.txt``. Train
items come from Fashion-MNIST's train split, val items from its test split.

Usage::

    python -m downstream.segmentation.synth --out data/segbench train_images=200 val_images=60 size=112
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from downstream.localization.synth import load_backgrounds
from downstream.segmentation.data import IGNORE
from downstream.segmentation.pictures import palette
from pretrain.data.datasets import FashionMNIST

log = logging.getLogger(__name__)

NUM_CLASSES = 11  # background + the 10 Fashion-MNIST classes


@dataclass
class SegSynthConfig:
    out: str = "data/segbench"
    fashion_mnist: str = "data"  # folder with the Fashion-MNIST IDX files (or a dpkg -x root holding them)
    size: int = 112
    train_images: int = 200
    val_images: int = 60
    max_items: int = 2
    seed: int = 0


def _paste_item(image: np.ndarray, label: np.ndarray, item: np.ndarray, cls: int, rng: np.random.Generator) -> None:
    """Upscale a 28x28 item to 35-60% of the side, paste it (in place) with class ``cls`` and an ignore ring."""
    size = image.shape[0]
    side = int(rng.uniform(0.35, 0.6) * size)
    big = np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR))
    mask = big > 40
    y, x = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
    region = label[y:y + side, x:x + side]
    ring = np.zeros_like(mask)  # pixels next to the object but outside it
    ring[1:] |= mask[:-1]
    ring[:-1] |= mask[1:]
    ring[:, 1:] |= mask[:, :-1]
    ring[:, :-1] |= mask[:, 1:]
    region[ring & ~mask] = IGNORE
    region[mask] = cls
    image[y:y + side, x:x + side][mask] = np.repeat(big[mask][:, None], 3, axis=1)


def compose(background: np.ndarray, items: Sequence[tuple[np.ndarray, int]], size: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RGB (size, size, 3) and labels (size, size) of ``items`` ((28, 28) uint8, class 0..9) on a background crop."""
    h, w = background.shape[:2]
    side = int(rng.uniform(0.6, 1.0) * min(h, w))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    image = np.array(Image.fromarray(background[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR))
    label = np.zeros((size, size), np.uint8)
    for item, cls in items:
        _paste_item(image, label, item, cls + 1, rng)
    return image, label


def build(cfg: SegSynthConfig) -> dict[str, int]:
    """Write the VOC layout under ``cfg.out``; returns the image count per split. Deterministic per seed."""
    rng = np.random.default_rng(cfg.seed)
    backgrounds = [bg for _, bg in load_backgrounds()]
    root = Path(cfg.out)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    colours = palette(NUM_CLASSES).flatten().tolist()
    counts = {}
    for split, n, source in (("train", cfg.train_images, "train"), ("val", cfg.val_images, "test")):
        fmnist = FashionMNIST(cfg.fashion_mnist, source, as_pil=False)
        images, labels = fmnist.images, fmnist.labels
        ids = []
        for i in range(n):
            picks = rng.integers(0, len(labels), size=int(rng.integers(1, cfg.max_items + 1)))
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
            image, label = compose(bg, [(images[j], int(labels[j])) for j in picks], cfg.size, rng)
            name = f"{split}_{i:05d}"
            Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
            png = Image.fromarray(label)
            png.putpalette(colours)  # an "L" image with a palette becomes "P", indices kept
            png.save(root / "SegmentationClass" / f"{name}.png")
            ids.append(name)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        counts[split] = n
    log.info("wrote %s to %s", counts, root)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.segmentation.synth [--out DIR] key=value ...``."""
    from downstream.eval_cli import parse_with_aliases

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build(parse_with_aliases(SegSynthConfig, argv, {"--out": "out"}, __doc__))


if __name__ == "__main__":
    main()
