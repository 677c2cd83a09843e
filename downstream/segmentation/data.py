"""Segmentation data sets: PASCAL VOC and ADE20K layouts, read with the checks a user needs.

VOC (``root/``): ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNGs whose index is
the class, 255 = ignore / object border), ``ImageSets/Segmentation/{train,val}.txt`` (one id a line).
ADE20K (``root/``, the SceneParsing release ADEChallengeData2016): ``images/{training,validation}/*.jpg``
and ``annotations/{training,validation}/*.png`` with 0 = "other" and classes 1..150; labels are shifted
down by one and 0 becomes 255 (ignored), as the ADE20K devkit / mmseg ``reduce_zero_label=True`` do.

Errors name what to fix: a missing folder (with the expected layout), an empty split (the split
file), a label value >= num_classes other than 255 (file and value), a label whose size differs
from its image (both sizes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IGNORE = 255
VOC_LAYOUT = "root/JPEGImages/<id>.jpg, root/SegmentationClass/<id>.png, root/ImageSets/Segmentation/<split>.txt"
ADE_LAYOUT = "root/images/{training,validation}/<name>.jpg, root/annotations/{training,validation}/<name>.png"
ADE_SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}


@dataclass
class Sample:
    image: Path
    label: Path


def _need(folder: Path, layout: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; expected layout {layout}")


def voc_samples(root: str | Path, split: str) -> list[Sample]:
    """(image, label) paths of a VOC split, in the split file's order."""
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        _need(root / sub, VOC_LAYOUT)
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"split file {listing} does not exist; expected layout {VOC_LAYOUT}")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"split {split!r} is empty: {listing} lists no image id")
    samples = [Sample(root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png") for i in ids]
    for s in samples:
        for p in (s.image, s.label):
            if not p.is_file():
                raise FileNotFoundError(f"{p} (listed in {listing}) does not exist")
    return samples


def ade_samples(root: str | Path, split: str) -> list[Sample]:
    """(image, annotation) pairs of an ADE20K split (``train`` / ``val`` or the release's names)."""
    root, sub = Path(root), ADE_SPLITS.get(split, split)
    images, labels = root / "images" / sub, root / "annotations" / sub
    _need(images, ADE_LAYOUT)
    _need(labels, ADE_LAYOUT)
    samples = [Sample(p, labels / f"{p.stem}.png") for p in sorted(images.glob("*.jpg"))]
    if not samples:
        raise ValueError(f"split {split!r} is empty: no .jpg in {images}")
    for s in samples:
        if not s.label.is_file():
            raise FileNotFoundError(f"annotation {s.label} of image {s.image} does not exist")
    return samples


def read_pair(sample: Sample, num_classes: int, reduce_zero_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H, W, 3) and int64 labels (H, W) in 0..K-1 or 255, checked.

    Raises:
        ValueError: Sizes differ, or a label value (after the shift) is >= num_classes and not 255.
    """
    with Image.open(sample.image) as im:
        image = np.asarray(im.convert("RGB"))
    with Image.open(sample.label) as lab:
        if lab.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"{sample.label}: label PNG has mode {lab.mode}; expected one class index per pixel "
                             "(palette 'P' or grey 'L')")
        label = np.asarray(lab).astype(np.int64)
    if label.shape != image.shape[:2]:
        raise ValueError(f"{sample.label} is {label.shape[1]}x{label.shape[0]} (WxH) but its image {sample.image} "
                         f"is {image.shape[1]}x{image.shape[0]}")
    if reduce_zero_label:  # ADE20K: 0 (other) -> ignore, k -> k - 1
        label = np.where(label == 0, IGNORE, label - 1)
    bad = (label >= num_classes) & (label != IGNORE)
    if bad.any():
        raise ValueError(f"{sample.label}: label value {int(label[bad].max())} is >= num_classes={num_classes} "
                         f"(and not the ignore value {IGNORE}){' after the ADE20K shift' if reduce_zero_label else ''}")
    return image, label
