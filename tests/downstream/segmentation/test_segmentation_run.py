"""End to end on made-up flat-colour images whose answer is known, and the parse-time errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from downstream.segmentation.cli import SegmentationConfig, run
from downstream.segmentation.metrics import scores
from pretrain.configuration import ConfigError, load_config

REPO = Path(__file__).resolve().parents[3]
COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)  # class 0, 1, 2


def _flat_voc(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """32x32 images of four 16x16 quadrants, one flat colour per class: two quadrants of class 0."""
    rng = np.random.default_rng(0)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        names = []
        for i in range(n):
            classes = rng.permutation([0, 0, 1, 2]).reshape(2, 2)
            label = np.kron(classes, np.ones((16, 16), np.int64)).astype(np.uint8)
            Image.fromarray(COLOURS[label]).save(root / "JPEGImages" / f"{split}{i}.jpg",
                                                 quality=100)
            Image.fromarray(label).save(root / "SegmentationClass" / f"{split}{i}.png")
            names.append(f"{split}{i}")
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names))
    return root


def test_flat_colours_are_segmented(tmp_path: Path):
    cfg = load_config(SegmentationConfig, None, [
        "model.name=vit_pico", "model.patch_size=8", f"data.root={_flat_voc(tmp_path / 'voc')}",
        "data.num_classes=3", "data.image_size=32", "data.num_workers=0", "head.epochs=30", "head.batch_size=4",
        "head.lr=1e-2", "device=cpu", "pictures=2", f"output={tmp_path / 'seg.json'}"])
    results = run(cfg)
    saved = json.loads((tmp_path / "seg.json").read_text())
    assert saved["mIoU"] > 90  # a linear head separates flat colours even on random features
    again = scores(np.array(saved["confusion"]))
    assert again["mIoU"] == pytest.approx(saved["mIoU"]) and again["pixel_acc"] == pytest.approx(saved["pixel_acc"])
    assert sum(map(sum, saved["confusion"])) == 4 * 32 * 32  # every val pixel, at the label size
    # majority baseline: class 0 (half of every image) everywhere: IoU 50, 0, 0
    assert saved["majority_class"] == 0 and saved["mIoU_majority"] == pytest.approx(50 / 3)
    assert saved["pixel_acc_majority"] == pytest.approx(50.0)
    assert len(results["per_class_iou"]) == 3
    picture = Image.open(tmp_path / "seg.png")
    assert picture.size == (3 * 128, 2 * 128)


def test_bad_head_blocks_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="head.blocks=3"):
        load_config(SegmentationConfig, None, ["head.blocks=3", "data.root=x"])


def test_cli_bad_layout_value_is_a_config_error(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "downstream.segmentation", "data.root=/nonexistent",
                           "data.layout=vocc"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "config error: data.layout='vocc' is not a valid value" in proc.stderr
