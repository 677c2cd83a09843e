"""VOC and ADE20K layouts written here: reading, the ADE20K label shift, and every bad input named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from downstream.segmentation.data import ade_samples, read_pair, voc_samples


def _voc(root: Path, labels: dict[str, np.ndarray], split: str = "train", size: tuple[int, int] = (16, 12)) -> Path:
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, label in labels.items():
        Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        png = Image.fromarray(label.astype(np.uint8))
        png.putpalette([0, 0, 0] * 256)
        png.save(root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{n}\n" for n in labels))
    return root


def test_voc_reads_palette_labels(tmp_path: Path):
    label = np.zeros((12, 16), np.uint8)
    label[2:5, 3:9], label[6, :] = 7, 255
    root = _voc(tmp_path, {"a": label})
    (sample,) = voc_samples(root, "train")
    image, read = read_pair(sample, num_classes=21, reduce_zero_label=False)
    assert image.shape == (12, 16, 3) and np.array_equal(read, label.astype(np.int64))


def test_ade_label_shift(tmp_path: Path):
    for sub in ("images/training", "annotations/training"):
        (tmp_path / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "images/training/x.jpg")
    Image.fromarray(np.array([[0, 1], [2, 150]], np.uint8)).save(tmp_path / "annotations/training/x.png")
    (sample,) = ade_samples(tmp_path, "train")
    _, label = read_pair(sample, num_classes=150, reduce_zero_label=True)
    assert label.tolist() == [[255, 0], [1, 149]]  # 0 (other) ignored, k -> k - 1


def test_label_value_too_large_names_file_and_value(tmp_path: Path):
    label = np.zeros((12, 16), np.uint8)
    label[0, 0] = 30
    (sample,) = voc_samples(_voc(tmp_path, {"bad": label}), "train")
    with pytest.raises(ValueError, match=r"bad\.png: label value 30 is >= num_classes=21"):
        read_pair(sample, 21, False)


def test_size_mismatch_names_both_sizes(tmp_path: Path):
    root = _voc(tmp_path, {"a": np.zeros((10, 10), np.uint8)})
    (sample,) = voc_samples(root, "train")
    with pytest.raises(ValueError, match=r"a\.png is 10x10 \(WxH\) but its image .*a\.jpg is 16x12"):
        read_pair(sample, 21, False)


def test_empty_split_names_the_split_file(tmp_path: Path):
    root = _voc(tmp_path, {})
    with pytest.raises(ValueError, match=r"split 'train' is empty: .*ImageSets/Segmentation/train\.txt"):
        voc_samples(root, "train")


def test_missing_folders_name_the_layout(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="expected layout root/JPEGImages/<id>.jpg"):
        voc_samples(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"expected layout root/images/\{training,validation\}"):
        ade_samples(tmp_path, "val")
